"""The baselines comparisons read, kept in memory: per rolling window (by the hour it ends) and
URL, the window's counters and one sketch per web vital (aggregates/sketch.py).

A URL's totals for a window are loaded once (by `load`, from the store's hourly rows: a cost of
hours x bins, never of samples) the first time that window is read for it, then kept current by
`add` as deltas are applied, so a comparison reads a few dict entries however many samples the
window holds. p75 and median are worked out from the sketch once per change of the URL's totals.

Pure: `load` is given (aggregates/store.py passes SQL over `url_hourly` and `vital_sketches`);
the store calls `add` after each committed apply and `clear` after pruning, under its lock.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Iterable, Optional, Sequence

from replaylens.aggregates.arithmetic import UrlStats, VitalStats, window_start
from replaylens.aggregates.deltas import COUNTERS, VITALS, hour_bucket
from replaylens.aggregates.sketch import VitalSketch

# Windows kept (by their end hour): a flush compares sessions that started in the last few
# hours (up to the 12 h a session may last), a backfill moves forward hour by hour.
MAX_WINDOWS = 16

Bins = dict[int, int]
# One URL's rows summed: (counters in COUNTERS order, {metric: {bin: count}})
Totals = tuple[Sequence[int], dict[str, Bins]]
# load(urls or None for all, first bucket, last bucket) -> {url: Totals}, URLs without rows absent
Loader = Callable[[Optional[Sequence[str]], int, int], dict[str, Totals]]
# What an apply adds: {(bucket, url): Totals}
Rows = dict[tuple[int, str], Totals]


class _UrlWindow:
    """One URL over one window: counters, sketches, and its UrlStats until they change."""

    __slots__ = ("counters", "sketches", "present", "stats")

    def __init__(self) -> None:
        self.counters = [0] * len(COUNTERS)
        self.sketches: dict[str, VitalSketch] = {}
        self.present = False  # has an hourly row in the window (else url_stats leaves it out)
        self.stats: Optional[UrlStats] = None

    def add(self, counters: Sequence[int], vitals: dict[str, Bins]) -> None:
        self.counters = [a + b for a, b in zip(self.counters, counters)]
        for metric, bins in vitals.items():
            sketch = self.sketches.get(metric)
            if sketch is None:
                sketch = self.sketches[metric] = VitalSketch()
            sketch.add_bins(bins)
        self.present = True
        self.stats = None

    def url_stats(self, url: str) -> UrlStats:
        if self.stats is None:
            stats = UrlStats(url, *self.counters)
            for metric in VITALS:
                sketch = self.sketches.get(metric)
                vital = VitalStats.of_sketch(sketch) if sketch is not None else None
                if vital is not None:
                    stats.vitals[metric] = vital
            self.stats = stats
        return self.stats


class _Window:
    __slots__ = ("start", "end", "urls", "complete")

    def __init__(self, start: int, end: int) -> None:
        self.start, self.end = start, end
        self.urls: dict[str, _UrlWindow] = {}  # loaded (or created by add once complete)
        self.complete = False  # every URL of the window is loaded


class BaselineWindows:
    def __init__(self, window_days: int, load: Loader, max_windows: int = MAX_WINDOWS) -> None:
        self.window_days = window_days
        self.load = load
        self.max_windows = max_windows
        self._windows: OrderedDict[int, _Window] = OrderedDict()  # by end bucket, least recent first
        self.loads = 0  # how many times `load` ran (tests, bench)

    def read(self, urls: Optional[Sequence[str]], at_ms: int) -> dict[str, UrlStats]:
        """Stats of these URLs (all when None) over the window ending with the hour of `at_ms`;
        URLs without data in it are absent. The UrlStats returned are shared: read only."""
        window = self._window(hour_bucket(at_ms))
        if urls is None:
            if not window.complete:
                self._load(window, None)
                window.complete = True
            wanted: Iterable[str] = list(window.urls)
        else:
            if not window.complete:
                missing = [u for u in dict.fromkeys(urls) if u not in window.urls]
                if missing:
                    self._load(window, missing)
            wanted = urls
        out: dict[str, UrlStats] = {}
        for url in wanted:
            entry = window.urls.get(url)
            if entry is not None and entry.present:
                out[url] = entry.url_stats(url)
        return out

    def add(self, rows: Rows) -> None:
        """Counts committed rows into every kept window they fall in."""
        if not self._windows:
            return
        for (bucket, url), (counters, vitals) in rows.items():
            for window in self._windows.values():
                if not window.start <= bucket <= window.end:
                    continue
                entry = window.urls.get(url)
                if entry is None:
                    if not window.complete:
                        continue  # not loaded yet: its load will read this row from the store
                    entry = window.urls[url] = _UrlWindow()
                entry.add(counters, vitals)

    def clear(self) -> None:
        """Forget every window (after pruning: they may hold deleted hours)."""
        self._windows.clear()

    def _window(self, end: int) -> _Window:
        window = self._windows.get(end)
        if window is None:
            window = self._windows[end] = _Window(window_start(end, self.window_days), end)
            while len(self._windows) > self.max_windows:
                self._windows.popitem(last=False)
        else:
            self._windows.move_to_end(end)
        return window

    def _load(self, window: _Window, urls: Optional[list[str]]) -> None:
        self.loads += 1
        loaded = self.load(urls, window.start, window.end)
        for url in (urls if urls is not None else loaded):
            if url in window.urls:
                continue  # already current (kept so by `add`)
            entry = window.urls[url] = _UrlWindow()
            totals = loaded.get(url)
            if totals is not None:
                entry.add(*totals)
