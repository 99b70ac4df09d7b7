"""The embedded runner: the whole pipeline in one process, no Kafka.

The core comes from `streams/wiring.build_core`, as the Kafka worker's does; the transport is an
iterator of raw messages in and files out: the DuckDB file, summaries as NDJSON, closed sessions
(with their comparisons) and dead letters as NDJSON beside them.
"""
from __future__ import annotations

import gc
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Union

import orjson
from tqdm import tqdm

from replaylens.config.settings import Settings
from replaylens.sinks.ndjson import NdjsonSummaryWriter
from replaylens.streams.alerting import EmbeddedAlerts
from replaylens.streams.stage import Flush, Origin, now_ms
from replaylens.streams.wiring import build_core

# Events between flushes (closing what can close, summarizing it): often enough to keep memory
# bounded by open sessions, rarely enough that a flush's fixed costs (one DuckDB read and one
# write per flush) stay a small share of the per-event time.
CLOSE_EVERY = 5_000


@dataclass
class EmbeddedReport:
    events: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    dead_letters: Counter = field(default_factory=Counter)
    summaries: int = 0
    summarizers: Counter = field(default_factory=Counter)
    issues: Counter = field(default_factory=Counter)
    outcomes: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    examples: list[dict[str, Any]] = field(default_factory=list)
    paths: dict[str, str] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


class _Lines:
    """Append-only NDJSON file, opened on first write."""

    def __init__(self, path: Path) -> None:
        self.path, self._f = path, None

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        dumps, option = orjson.dumps, orjson.OPT_APPEND_NEWLINE
        data = b"".join([dumps(r, option=option) for r in records])
        if data:
            if self._f is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._f = open(self.path, "wb")
            self._f.write(data)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()


class EmbeddedPipeline:
    def __init__(self, settings: Settings, examples: int = 3) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.core = build_core(settings)
        self.summaries = NdjsonSummaryWriter(settings.summaries_path)
        self.closed_file = _Lines(settings.data_dir / "closed-sessions.ndjson")
        self.dead_file = _Lines(settings.data_dir / "dead-letters.ndjson")
        self.report = EmbeddedReport()
        self.alerts = EmbeddedAlerts(settings, self.core.store) if settings.rules.enabled else None  # issue 14
        self.want_examples = examples

    async def run(self, messages: Iterable[Union[bytes, str]], total: Optional[int] = None,
                  progress: bool = True) -> EmbeddedReport:
        started = time.perf_counter()
        bar = tqdm(total=total, unit="ev", unit_scale=True, disable=not progress, desc="events")
        wall = now_ms()
        origin = Origin(topic="embedded", partition=0)
        process = self.core.stage.process
        feed_alerts = self.alerts.feed if self.alerts is not None else None
        n = 0
        try:
            for raw in messages:
                origin.offset = n
                accepted = process(0, raw, origin, wall)
                if feed_alerts is not None:
                    feed_alerts(accepted, raw)
                n += 1
                if n % CLOSE_EVERY == 0:
                    wall = now_ms()
                    await self._flush(wall)
                    bar.update(CLOSE_EVERY)
            await self._flush(None, close_all=True)
            bar.update(n % CLOSE_EVERY)
            self.core.store.compact()  # no prune timer here: the file ends with one row per sketch bin
        finally:
            bar.close()
            self._close_files()
            await self.core.aclose()
        self.report.events = n
        self.report.seconds = time.perf_counter() - started
        self.report.counters = self.core.counters.as_dict()
        return self.report

    async def _flush(self, clock_ms: Optional[int], close_all: bool = False) -> None:
        """Close what can close (everything with `close_all`), compare, write and summarize it,
        without the garbage collector's passes: what a flush makes (closed sessions, summaries)
        is freed by reference counting when it ends, and a pass meanwhile would only walk it
        (about a third of the collector's time in the embedded run). It runs again after."""
        collecting = gc.isenabled()
        gc.disable()
        try:
            now = clock_ms if clock_ms is not None else now_ms()
            await self._write(self.core.flush_now([0], clock_ms, now, close_all=close_all, with_state=False))
        finally:
            if collecting:
                gc.enable()

    async def _write(self, out: Flush) -> None:
        """A flush, written the embedded way: files and the DuckDB file (state stays in memory,
        re-keys cannot happen: one partition)."""
        if out.dead_letters:
            self.report.dead_letters.update(d["reason"] for d in out.dead_letters)
            self.dead_file.write(out.dead_letters)
        if not out.closed:
            return
        self.core.store.apply(out.deltas)
        self.closed_file.write(out.closed)
        summaries = await self.core.summarize_all(out.closed)
        dumped = [s.model_dump(mode="json") for s in summaries]  # once, for the file and the alerts
        self.summaries.write_dumped(dumped)
        self._tally(summaries, dumped)
        if self.alerts is not None:
            self.alerts.feed_closed(out.closed, dumped)

    def _tally(self, summaries: list[Any], dumped: list[dict[str, Any]]) -> None:
        r = self.report
        r.summaries += len(summaries)
        for s, d in zip(summaries, dumped):
            r.summarizers[s.summarizer] += 1
            r.outcomes[s.outcome.status] += 1
            r.issues.update(i.type for i in s.potential_issues)
            if len(r.examples) < self.want_examples and len(s.potential_issues) >= 2:
                r.examples.append(d)

    def _close_files(self) -> None:
        self.summaries.close()
        self.closed_file.close()
        if self.alerts is not None:
            self.alerts.close()
            self.report.alerts = self.alerts.alerts
            self.report.paths["alerts"] = str(self.alerts.path)
        self.dead_file.close()
        self.report.paths = self.report.paths | {
            "duckdb": str(self.settings.duckdb_path), "summaries": str(self.settings.summaries_path),
            "closed_sessions": str(self.closed_file.path), "dead_letters": str(self.dead_file.path),
        }
