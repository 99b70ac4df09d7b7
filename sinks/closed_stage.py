"""What happens to closed sessions: compare with the average experience and compute the
per-URL deltas (`enrich`, once per flush), then summarize each with every streaming profile.

Shared by both runners through `streams/wiring.py`: the embedded runner applies the deltas to its
own DuckDB file at once; the Kafka worker publishes them to the url-deltas topic, which every
worker materializes. Either way the comparisons are on the session before it is written anywhere.
"""
from __future__ import annotations

import logging
from typing import Any, Optional

from replaylens.aggregates.comparison import compare_session
from replaylens.aggregates.deltas import UrlDelta, session_deltas
from replaylens.aggregates.store import AggregateStore
from replaylens.aggregates.urls import UrlNormalizer
from replaylens.schemas.summaries import Summary
from replaylens.sinks.summarize import SummarizerSink

log = logging.getLogger(__name__)


class ClosedSessionStage:
    def __init__(self, store: Optional[AggregateStore], normalizer: UrlNormalizer, sink: SummarizerSink,
                 min_sessions: int) -> None:
        self.store = store
        self.normalizer = normalizer
        self.sink = sink
        self.min_sessions = min_sessions
        self.failed = 0  # sessions whose comparisons or deltas raised (published without them)

    def enrich(self, sessions: list[dict[str, Any]], now_ms: int) -> list[UrlDelta]:
        """Attach comparisons (against the baseline as the store has it now, so without these
        sessions) and return the sessions' deltas. One store read per batch, not per session."""
        if self.store is None:
            raise RuntimeError("comparisons need the aggregate store (a sessionizing worker's)")
        urls = {self.normalizer.normalize(p["url"]) for s in sessions for p in s.get("pages") or ()
                if p.get("url")}
        stats = self.store.url_stats(sorted(urls), now_ms) if urls else {}
        deltas: list[UrlDelta] = []
        for s in sessions:
            try:
                own = session_deltas(s, self.normalizer)
                s["comparisons"] = [c.model_dump() for c in
                                    compare_session(s, stats, self.normalizer, self.min_sessions, deltas=own)]
            except Exception as exc:  # noqa: BLE001 - one session must not fail its whole flush
                # Published and summarized without comparisons or aggregates; counted and logged.
                self.failed += 1
                log.warning("comparisons of session %s failed: %s", s.get("window_id"), type(exc).__name__)
                s["comparisons"] = []
                continue
            deltas += own
        return deltas

    async def summarize(self, session: dict[str, Any]) -> list[Summary]:
        """One summary per streaming profile; the sink never raises for one session."""
        return await self.sink.summarize_closed(session)
