"""What happens to a batch of closed sessions: compare with the average experience, compute the
per-URL deltas, summarize with every streaming profile.

Shared by both transports: the embedded runner applies the deltas to its own DuckDB file at
once; the Faust worker publishes them to the url-deltas topic, which every worker materializes.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from replaylens.aggregates.comparison import compare_batch
from replaylens.aggregates.deltas import UrlDelta, counts_in_baselines
from replaylens.aggregates.store import AggregateStore
from replaylens.aggregates.urls import UrlNormalizer
from replaylens.schemas.summaries import Summary
from replaylens.sinks.summarize import SummarizerSink


@dataclass
class ClosedBatchResult:
    deltas: list[UrlDelta]
    summaries: list[Summary]


class ClosedSessionStage:
    def __init__(self, store: AggregateStore, normalizer: UrlNormalizer, sink: SummarizerSink,
                 min_sessions: int, exclude_automated: bool = True) -> None:
        self.store = store
        self.exclude_automated = exclude_automated
        self.normalizer = normalizer
        self.sink = sink
        self.min_sessions = min_sessions

    def enrich(self, sessions: list[dict[str, Any]], now_ms: int) -> list[UrlDelta]:
        """Attach comparisons and return the sessions' deltas. Baselines are in event time: each
        session against the window ending at its own start, including the batch's earlier
        sessions (aggregates/comparison.py `compare_batch`); `now_ms` is not used for them."""
        return compare_batch(sessions, self.store.url_stats, self.normalizer, self.min_sessions,
                             self.store.window_days,
                             counts=lambda s: counts_in_baselines(s, self.exclude_automated))

    async def handle(self, sessions: list[dict[str, Any]], now_ms: int) -> ClosedBatchResult:
        # DuckDB reads block: keep the event loop (Kafka heartbeats, LLM calls) free.
        deltas = await asyncio.to_thread(self.enrich, sessions, now_ms)
        per_session = await asyncio.gather(*(self.sink.summarize_closed(s) for s in sessions))
        return ClosedBatchResult(deltas, [x for batch in per_session for x in batch])
