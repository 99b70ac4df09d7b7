"""Compare one closed session, page by page, with each page's rolling baseline.

Pure: takes the session dict and the baseline `UrlStats` (from `AggregateStore.url_stats`)
and returns `schemas.sessions.Comparison` items for the summarizer.

Decisions:
- Baseline in EVENT time: the rolling window ends with the hour the session started (not the
  wall clock), so replaying last month's events compares them with last month. `compare_batch`
  compares a batch of closed sessions in the order they started: each one against the store
  (read before the batch's own deltas are applied) plus the sessions of the batch that started
  before it, so the first sessions of a run build the baseline of the later ones.
  Counters add up exactly; a web vital's p75 from the store comes from its sketch (within 1% of
  the exact nearest-rank p75, aggregates/sketch.py), so a vital takes the store's p75 when the
  store alone has `min_sessions` samples, else the p75 of the larger of the two samples (store,
  or the exact p75 of the batch's earlier sessions).
  A redelivered session may be in its own baseline (one sample among at least `min_sessions`,
  so it hardly moves the figures).
- A page is compared only when its baseline has `visits >= min_sessions`; a web vital also
  needs `>= min_sessions` samples of that metric. Below that, nothing is claimed.
- Per page visited (normalized URL, in order of first visit):
  * each web vital the session measured there (its worst value over the page's views)
    vs the page's p75; worse when above the p75 by more than the sketch's resolution (the value
    lies in a higher sketch bin than the p75), so "worse" is true of the exact p75 too, never an
    artefact of the 1% approximation (a value within a bin of the p75 is not called worse);
  * JS and API errors when the session had any there, vs errors per session on that page
    (the mean); worse when above the mean;
  * frustration signals there vs the share of sessions with frustration on the page;
    worse when fewer than half of the page's sessions show frustration;
  * time on page (sum of its views) vs the page's mean time on page, only when at least
    twice or at most half the mean; worse when at least twice (a sign of struggle);
  * the exit page: "left from ..., a page whose exit rate is X%"; worse when the exit rate
    is below 50% (most sessions go on from there). A bounce (single-page session) is said
    with the page's bounce rate instead, worse when the bounce rate is below 50%.
"""
from __future__ import annotations

from bisect import bisect_left
from collections import deque
from functools import lru_cache
from operator import add, attrgetter, sub
from typing import Any, Callable, Container, NamedTuple, Optional, Sequence

from replaylens.aggregates.arithmetic import UrlStats, VitalStats, quantile, window_start
from replaylens.aggregates.deltas import COUNTERS, SITE_URL, VITALS, UrlDelta, hour_bucket, session_deltas
from replaylens.aggregates.sketch import sketch_bin
from replaylens.aggregates.urls import UrlNormalizer, display_path
from replaylens.config.wording import plural as _plural
from replaylens.config.wording import short_duration as format_duration
from replaylens.schemas.sessions import Comparison

VITAL_LABELS = {"lcp": "LCP", "inp": "INP", "cls": "CLS", "fcp": "FCP", "ttfb": "TTFB"}
TIME_RATIO = 2.0


def format_vital(metric: str, value: float) -> str:
    return f"{value:.2f}" if metric == "cls" else format_duration(value)


def format_rate(rate: float) -> str:
    percent = rate * 100
    if percent == 0 or percent >= 10 or percent == round(percent):
        return f"{percent:.0f}%"
    return f"{percent:.1f}%"


def format_mean(value: float) -> str:
    if value == 0:
        return "0"
    if value >= 10:
        return f"{value:.0f}"
    if value >= 1:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{value:.2g}"


def _comparison(url: str, metric: str, session_value: float, baseline_value: float, baseline: str,
                sample_size: int, worse: bool, text: str) -> dict[str, Any]:
    """A comparison as the dict `Comparison(...).model_dump()` gives (same keys, order and types),
    built directly: a model per comparison cost more than everything else in comparing a session."""
    return {"url": url, "metric": metric, "session_value": float(session_value),
            "baseline_value": float(baseline_value), "baseline": baseline, "sample_size": int(sample_size),
            "worse": bool(worse), "text": text}


def vital_worse(value: float, p75: float) -> bool:
    """Slower than the p75 by more than the sketch's resolution: in a higher bin (every value of
    a higher bin exceeds every value of the p75's bin, the exact p75 among them)."""
    return value > p75 and sketch_bin(value) > sketch_bin(p75)


# Distinct (metric, p75, page) texts kept: a batch reads one p75 per page and metric per hour.
P75_TEXT_CACHE = 4096


@lru_cache(maxsize=P75_TEXT_CACHE)
def _p75_part(metric: str, p75: float, where: str) -> tuple[str, int]:
    """The baseline's half of a vital's text and the p75's sketch bin: the same for every session
    compared with that page's p75, so formatted once."""
    return f" vs p75 {format_vital(metric, p75)} on {where}", sketch_bin(p75)


def _vital_comparisons(url: str, where: str, own_vitals: dict[str, list[float]], stats: UrlStats,
                       min_sessions: int) -> list[dict[str, Any]]:
    """The session's worst value of each vital measured on the page vs the page's p75."""
    found = []
    vitals = stats.vitals
    for metric in VITALS:
        values = own_vitals.get(metric)
        if not values:
            continue
        vital = vitals.get(metric)
        if vital is None or vital.samples < min_sessions:
            continue
        value, p75 = max(values), vital.p75
        if p75:
            tail, p75_bin = _p75_part(metric, p75, where)
        else:  # 0 and -0.0 are equal keys but format differently: not cached
            tail, p75_bin = f" vs p75 {format_vital(metric, p75)} on {where}", sketch_bin(p75)
        # _comparison's dict, inline: vitals are most of a session's comparisons
        found.append({"url": url, "metric": metric, "session_value": float(value), "baseline_value": float(p75),
                      "baseline": "p75", "sample_size": int(vital.samples),
                      "worse": value > p75 and sketch_bin(value) > p75_bin,  # vital_worse, p75 bin cached
                      "text": f"{VITAL_LABELS[metric]} {format_vital(metric, value)}{tail}"})
    return found


def _error_comparisons(url: str, where: str, own: UrlDelta, stats: UrlStats) -> list[dict[str, Any]]:
    found = []
    for metric, label, count, mean in (
        ("js_errors", "JavaScript error", own.js_errors, stats.js_errors_per_visit),
        ("api_errors", "API error", own.api_errors, stats.api_errors_per_visit),
    ):
        if count and mean is not None:
            found.append(_comparison(
                url, metric, count, mean, "mean", stats.visits, count > mean,
                f"{_plural(count, label)} on {where} where the average session sees {format_mean(mean)}"))
    return found


def session_urls(session: dict[str, Any], normalizer: UrlNormalizer) -> list[str]:
    """The normalized URLs a session visited, in order of first visit: what to fetch stats for."""
    return list(dict.fromkeys(normalizer.normalize(p["url"]) for p in session.get("pages") or () if p.get("url")))


def compare_session(
    session: dict[str, Any],
    stats: dict[str, UrlStats],
    normalizer: UrlNormalizer,
    min_sessions: int,
    deltas: Optional[list[UrlDelta]] = None,
) -> list[Comparison]:
    """How each page of this closed session compares with that page's baseline.

    Pass the session's `deltas` when already computed (for publishing) to skip recomputing them.
    """
    own_deltas = {d.url: d for d in (deltas if deltas is not None else session_deltas(session, normalizer))}
    return [Comparison(**c) for url in session_urls(session, normalizer)
            for c in _page_comparisons(url, own_deltas[url], stats.get(url), min_sessions)]


# The page URLs of a run repeat on every session: their display paths are kept.
DISPLAY_PATH_CACHE = 4096
_display_path = lru_cache(maxsize=DISPLAY_PATH_CACHE)(display_path)


def _page_comparisons(url: str, own: UrlDelta, baseline: Optional[UrlStats], min_sessions: int) -> list[dict[str, Any]]:
    """One visited page's comparisons (as dicts) with its baseline; none below `min_sessions`."""
    if baseline is None or baseline.visits < min_sessions:
        return []
    where = _display_path(url)
    comparisons: list[dict[str, Any]] = []
    if own.vitals:
        comparisons += _vital_comparisons(url, where, own.vitals, baseline, min_sessions)
    if own.js_errors or own.api_errors:
        comparisons += _error_comparisons(url, where, own, baseline)
    signals = own.rage_clicks + own.dead_clicks + own.error_clicks + own.mouse_thrashes
    if signals:
        comparisons += _frustration(url, where, signals, baseline)
    if own.time_on_page_ms:
        comparisons += _time_on_page(url, where, own.time_on_page_ms, baseline)
    if own.bounces:
        comparisons += _rate(url, where, "bounce_rate", "bounced from", baseline.bounce_rate, "bounce rate", baseline)
    elif own.exits:
        comparisons += _rate(url, where, "exit_rate", "left from", baseline.exit_rate, "exit rate", baseline)
    return comparisons


def _frustration(url: str, where: str, signals: int, stats: UrlStats) -> list[dict[str, Any]]:
    share = stats.frustration_share
    if not signals or share is None:
        return []
    return [_comparison(
        url, "frustration", signals, share, "rate", stats.visits, share < 0.5,
        f"{_plural(signals, 'frustration signal')} on {where}, where {format_rate(share)} of sessions show frustration")]


def _time_on_page(url: str, where: str, spent_ms: int, stats: UrlStats) -> list[dict[str, Any]]:
    mean = stats.avg_time_on_page_ms
    if not mean or not spent_ms or (mean / TIME_RATIO < spent_ms < TIME_RATIO * mean):
        return []  # unremarkable
    longer = spent_ms >= TIME_RATIO * mean
    return [_comparison(
        url, "time_on_page_ms", spent_ms, mean, "mean", stats.visits, longer,
        f"{format_duration(spent_ms)} on {where} vs an average of {format_duration(mean)}")]


def _rate(url: str, where: str, metric: str, verb: str, rate: Optional[float], label: str,
          stats: UrlStats) -> list[dict[str, Any]]:
    if rate is None:
        return []
    return [_comparison(
        url, metric, 1.0, rate, "rate", stats.visits, rate < 0.5,
        f"{verb} {where}, a page whose {label} is {format_rate(rate)}")]


# --------------------------------------------------------------------------- batches in event time

StatsReader = Callable[[Sequence[str], int], dict[str, UrlStats]]


_counters_of = attrgetter(*COUNTERS)
_NO_COUNTERS = (0,) * len(COUNTERS)
_NO_VITALS: dict[str, VitalStats] = {}


class _Vital(NamedTuple):
    """VitalStats' fields for a baseline that lives only while one page is compared: a tuple
    is made in half the time of the frozen dataclass, and a page combines one per vital."""

    samples: int
    p75: float
    median: float


class _UrlWindow:
    """Running totals of one URL over the batch's earlier sessions still inside the window.
    Samples are sorted only when a quantile or an eviction needs them (most comparisons take the
    store's p75), and a stable sort of appended samples orders them as inserting each would."""

    __slots__ = ("deltas", "totals", "samples", "unsorted")

    def __init__(self) -> None:
        self.deltas: deque[UrlDelta] = deque()
        self.totals = [0] * len(COUNTERS)  # in COUNTERS order
        self.samples: dict[str, list[float]] = {}
        self.unsorted: set[str] = set()  # metrics whose samples were appended since the last sort

    def add(self, delta: UrlDelta) -> None:
        self.deltas.append(delta)
        self.totals = list(map(add, self.totals, _counters_of(delta)))
        for metric, values in delta.vitals.items():
            self.samples.setdefault(metric, []).extend(values)
            self.unsorted.add(metric)

    def sorted_samples(self, metric: str) -> list[float]:
        values = self.samples.get(metric) or []
        if metric in self.unsorted:
            values.sort()
            self.unsorted.discard(metric)
        return values

    def evict_before(self, bucket: int) -> None:
        while self.deltas and self.deltas[0].bucket < bucket:
            old = self.deltas.popleft()
            self.totals = list(map(sub, self.totals, _counters_of(old)))
            for metric, values in old.vitals.items():
                ordered = self.sorted_samples(metric)
                for value in values:
                    del ordered[bisect_left(ordered, value)]


class _Earlier:
    """The batch's sessions that started before the current one, per URL, in a sliding window
    (sessions arrive in start order, so the window only moves forward)."""

    def __init__(self) -> None:
        self.urls: dict[str, _UrlWindow] = {}

    def add(self, deltas: list[UrlDelta]) -> None:
        for delta in deltas:
            if delta.url == SITE_URL:
                continue  # the site-wide row is no page: never compared, so no window
            window = self.urls.get(delta.url)
            if window is None:
                window = self.urls[delta.url] = _UrlWindow()
            window.add(delta)

    def combined(self, url: str, stored: Optional[UrlStats], since_bucket: int, min_sessions: int,
                 metrics: Container[str] = VITALS) -> Optional[UrlStats]:
        """The store's figures plus the batch's earlier sessions'; web vitals only for `metrics`
        (the ones the session measured: no other is compared)."""
        window = self.urls.get(url)
        if window is not None:
            window.evict_before(since_bucket)
        if window is None or not window.deltas:
            return stored
        base = _counters_of(stored) if stored else _NO_COUNTERS
        stats = UrlStats(url, *map(add, base, window.totals))
        vitals = stats.vitals
        stored_vitals = stored.vitals if stored else _NO_VITALS
        samples = window.samples
        for metric in VITALS:
            if metric not in metrics:
                continue
            from_store = stored_vitals.get(metric)
            count = len(samples.get(metric) or ())
            if not count:
                if from_store is not None:
                    vitals[metric] = from_store
            elif from_store is not None and (from_store.samples >= min_sessions or from_store.samples >= count):
                vitals[metric] = _Vital(from_store.samples + count, from_store.p75, from_store.median)
            else:  # the batch's samples are the larger (or the only) sample: their quantiles
                values = window.sorted_samples(metric)
                vitals[metric] = _Vital((from_store.samples if from_store else 0) + count,
                                        quantile(values, 0.75), quantile(values, 0.5))
        return stats


def compare_batch(sessions: list[dict[str, Any]], read_stats: StatsReader, normalizer: UrlNormalizer,
                  min_sessions: int, window_days: int,
                  counts: Callable[[dict[str, Any]], bool] = lambda session: True) -> list[UrlDelta]:
    """Attach `comparisons` to each session (in place) against its event-time baseline; returns
    the sessions' deltas, for the caller to apply or publish.

    `read_stats(urls, at_ms)` reads the store's rolling window ending with the hour of `at_ms`
    (`AggregateStore.url_stats`); it is called once per distinct start hour in the batch.
    Sessions for which `counts` is false (e.g. automated ones) are compared but add nothing.
    """
    ordered = sorted(sessions, key=lambda s: int(s["started_at"]))
    urls = sorted({normalizer.normalize(p["url"]) for s in ordered for p in s.get("pages") or () if p.get("url")})
    stored_by_hour: dict[int, dict[str, UrlStats]] = {}
    earlier = _Earlier()
    all_deltas: list[UrlDelta] = []
    for session in ordered:
        at_ms = int(session["started_at"])
        hour = hour_bucket(at_ms)
        if hour not in stored_by_hour:
            stored_by_hour[hour] = read_stats(urls, at_ms) if urls else {}
        stored = stored_by_hour[hour]
        since = window_start(at_ms, window_days)
        own = session_deltas(session, normalizer)
        comparisons: list[dict[str, Any]] = []
        for delta in own[:-1]:  # one per page in order of first visit (session_urls' order); the site's last
            url = delta.url
            baseline = earlier.combined(url, stored.get(url), since, min_sessions, delta.vitals)
            comparisons += _page_comparisons(url, delta, baseline, min_sessions)
        session["comparisons"] = comparisons
        if counts(session):
            earlier.add(own)
            all_deltas += own
    return all_deltas
