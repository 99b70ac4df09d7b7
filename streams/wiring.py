"""One wiring of the core, built once from Settings, for both runners.

`Core` is the typed context the embedded runner (`streams/embedded.py`) and the Kafka worker
(`streams/worker.py`, `streams/agents.py`) share, in the spirit of a stream processor's processing
context: the settings, the sessionizing stage, the aggregate store, the URL normalizer, the
closed-session stage (comparisons and deltas) with its summarizer sink, and the counters. What
differs between the runners is only how they write a `Flush` and where summaries go.

The order is the same in both: a flush closes sessions, `enrich` attaches their comparisons
against the baseline (before the sessions' own deltas are applied), and only then are the closed
sessions written (file or topic) and summarized.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Container, Iterable, Optional

from replaylens.aggregates.store import AggregateStore
from replaylens.aggregates.urls import UrlNormalizer
from replaylens.config.settings import Settings
from replaylens.schemas.summaries import Summary
from replaylens.sinks.builtin import BuiltinSummarizer
from replaylens.sinks.closed_stage import ClosedSessionStage
from replaylens.sinks.profiles_store import ProfileStore
from replaylens.sinks.summarize import SummarizerSink, build_sink
from replaylens.streams.stage import Counters, Flush, SessionStage


@dataclass
class Core:
    settings: Settings
    counters: Counters
    stage: SessionStage
    store: Optional[AggregateStore]  # None in a summarize-only worker (it compares nothing)
    normalizer: UrlNormalizer
    sink: SummarizerSink
    closed_stage: ClosedSessionStage

    async def flush(self, partitions: Iterable[int], clock_ms: Optional[int], now_ms: int,
                    hold: Container[str] = (), close_all: bool = False, with_state: bool = True,
                    held: Container[int] = ()) -> Flush:
        """The stage's output since the last flush, its closed sessions carrying comparisons,
        and their url deltas in `Flush.deltas`. Session ids in `hold`, and every session of the
        partitions in `held`, wait for events still in the re-key topic (worker.RekeyHold)."""
        out = self.stage.flush(partitions, clock_ms, hold, close_all, with_state, held)
        if out.closed:
            # DuckDB reads block: keep the event loop (Kafka heartbeats, LLM calls) free.
            out.deltas = await asyncio.to_thread(self.closed_stage.enrich, out.closed, now_ms)
        return out

    def flush_now(self, partitions: Iterable[int], clock_ms: Optional[int], now_ms: int,
                  close_all: bool = False, with_state: bool = True) -> Flush:
        """`flush` on the calling thread, for a runner with nothing to serve meanwhile (the
        embedded one: no heartbeats, no LLM call in flight between its flushes)."""
        out = self.stage.flush(partitions, clock_ms, (), close_all, with_state)
        if out.closed:
            out.deltas = self.closed_stage.enrich(out.closed, now_ms)
        return out

    async def summarize(self, session: dict[str, Any]) -> list[Summary]:
        return await self.closed_stage.summarize(session)

    def summarize_builtin(self, session: dict[str, Any]) -> list[Summary]:
        """`summarize` without the event loop; only when `sink.builtin_only` (no LLM profile)."""
        return self.closed_stage.summarize_builtin(session)

    async def summarize_all(self, sessions: list[dict[str, Any]]) -> list[Summary]:
        if self.sink.builtin_only:  # nothing to await: no task per session
            return [x for s in sessions for x in self.summarize_builtin(s)]
        per_session = await asyncio.gather(*(self.summarize(s) for s in sessions))
        return [x for batch in per_session for x in batch]

    async def aclose(self) -> None:
        """Cancel LLM calls in flight (their sessions stay uncommitted), close the store."""
        await self.sink.aclose()
        if self.store is not None:
            self.store.close()


def build_core(settings: Settings, counters: Optional[Counters] = None, with_store: bool = True) -> Core:
    counters = counters or Counters()
    store = AggregateStore.from_settings(settings) if with_store else None
    normalizer = UrlNormalizer.from_settings(settings)
    sink = build_sink(settings, ProfileStore(settings.profiles_dir).streaming(),
                      BuiltinSummarizer.from_settings(settings))
    return Core(settings, counters, SessionStage.from_settings(settings, counters), store, normalizer,
                sink, ClosedSessionStage(store, normalizer, sink, settings.comparison_min_sessions,
                                      settings.baselines_exclude_automated))
