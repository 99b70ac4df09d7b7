"""What happens to closed sessions: compare with the average experience and compute the
per-URL deltas (`enrich`, once per flush), then summarize each with every streaming profile.

Shared by both runners through `streams/wiring.py`: the embedded runner applies the deltas to its
own DuckDB file at once; the Kafka worker publishes them to the url-deltas topic, which every
worker materializes. Either way the comparisons are on the session before it is written anywhere.
"""
from __future__ import annotations

import logging
from typing import Any, Optional

from replaylens.aggregates.comparison import compare_batch
from replaylens.aggregates.deltas import UrlDelta, counts_in_baselines
from replaylens.aggregates.store import AggregateStore
from replaylens.aggregates.urls import UrlNormalizer
from replaylens.schemas.summaries import Summary
from replaylens.sinks.summarize import SummarizerSink

log = logging.getLogger(__name__)


class ClosedSessionStage:
    def __init__(self, store: Optional[AggregateStore], normalizer: UrlNormalizer, sink: SummarizerSink,
                 min_sessions: int, exclude_automated: bool = True) -> None:
        self.store = store
        self.normalizer = normalizer
        self.sink = sink
        self.min_sessions = min_sessions
        self.exclude_automated = exclude_automated
        self.failed = 0  # sessions whose comparisons or deltas raised (published without them)

    def enrich(self, sessions: list[dict[str, Any]], now_ms: int) -> list[UrlDelta]:
        """Attach comparisons and return the sessions' deltas. Baselines are in event time: each
        session against the window ending at its own start, including the batch's earlier
        sessions (aggregates/comparison.py `compare_batch`); `now_ms` is not used for them."""
        if self.store is None:
            raise RuntimeError("comparisons need the aggregate store (a sessionizing worker's)")
        try:
            return self._compare(sessions)
        except Exception:  # noqa: BLE001 - one session must not fail its whole flush: one by one
            deltas: list[UrlDelta] = []
            for session in sessions:
                try:
                    deltas += self._compare([session])
                except Exception as exc:  # noqa: BLE001 - published and summarized without them
                    self.failed += 1
                    log.warning("comparisons of session %s failed: %s", session.get("window_id"),
                                type(exc).__name__)
                    session["comparisons"] = []
            return deltas

    def _compare(self, sessions: list[dict[str, Any]]) -> list[UrlDelta]:
        return compare_batch(sessions, self.store.url_stats, self.normalizer, self.min_sessions,
                             self.store.window_days,
                             counts=lambda s: counts_in_baselines(s, self.exclude_automated))

    async def summarize(self, session: dict[str, Any]) -> list[Summary]:
        """One summary per streaming profile; the sink never raises for one session."""
        return await self.sink.summarize_closed(session)

    def summarize_builtin(self, session: dict[str, Any]) -> list[Summary]:
        """`summarize` in one synchronous call; only when `sink.builtin_only` (no LLM profile)."""
        return self.sink.summarize_builtin(session)
