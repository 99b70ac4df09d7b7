"""The Faust worker's figures for /health and /metrics (streams/health.py), from its runtime.

A thin adapter: it reads what the runtime, the stage, the summarizer and Faust's consumer already
know. Consumer lag is the partition's high watermark minus the offset Faust committed.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable

from replaylens.streams.health import STALE_TICKS, Figures, HealthServer, WorkerMetrics

log = logging.getLogger("replaylens.streams")


class WorkerFiguresSource:
    def __init__(self, app: Any, runtime: Any, metrics: WorkerMetrics) -> None:
        self.app, self.runtime, self.metrics = app, runtime, metrics
        self.settings = runtime.settings

    def assigned(self) -> list[int]:
        try:
            tps = self.app.assignor.assigned_actives()
        except Exception:  # noqa: BLE001 - not assigned yet
            return []
        return sorted(tp.partition for tp in tps if tp.topic == self.settings.topic_events)

    def consumer_lag(self) -> dict[tuple[str, int], int]:
        consumer = getattr(self.app, "_consumer", None)
        if consumer is None:
            return {}
        try:
            assignment: Iterable[Any] = consumer.assignment()
            committed = consumer._committed_offset  # Faust's own record of what it committed
        except Exception:  # noqa: BLE001 - the consumer is (re)starting
            return {}
        lag = {}
        for tp in assignment:
            try:
                high = consumer.highwater(tp)
            except Exception:  # noqa: BLE001
                continue
            if high is None:
                continue
            done = committed.get(tp) or 0
            lag[(tp.topic, tp.partition)] = max(0, high - done)
        return lag

    def problems(self) -> list[str]:
        out = []
        stale_after = STALE_TICKS * self.settings.tick_interval_s
        age = self.metrics.tick_age_s()
        if age > stale_after:
            out.append(f"no tick for {age:.0f} s (the event loop is stuck or the worker is not running)")
        crashed = getattr(self.app, "crash_reason", None)
        if crashed is not None:
            out.append(f"the app crashed: {type(crashed).__name__}")
        return out

    def figures(self) -> Figures:
        stage = self.runtime.stage
        closed_stage = getattr(self.runtime, "closed_stage", None)
        llm = closed_stage.sink.llm if closed_stage is not None else None
        materializer = getattr(self.runtime, "materializer", None)
        return Figures(
            app_id=self.settings.app_id, assigned_partitions=self.assigned(),
            counters=stage.counters.as_dict(), open_sessions=stage.open_sessions(),
            buffered_events=stage.buffered_events(), consumer_lag=self.consumer_lag(),
            batch_seconds=self.metrics.batch_seconds,
            dead_letters=dict(getattr(stage, "dead_letters_by_reason", {})),
            llm_calls=llm.stats.calls if llm else 0, llm_answers=llm.stats.answers if llm else 0,
            llm_fallbacks=dict(llm.stats.fallbacks) if llm else {},
            url_deltas_applied=materializer.applied if materializer else None,
            wall_clock_paused=getattr(stage, "wall_clock_paused", False),
            problems=self.problems())


async def start_health_server(app: Any, runtime: Any, metrics: WorkerMetrics) -> HealthServer | None:
    """Serve /health and /metrics if a port is set; a port in use is logged, never fatal."""
    s = runtime.settings
    if not s.metrics_port:
        return None
    server = HealthServer(WorkerFiguresSource(app, runtime, metrics), s.metrics_host, s.metrics_port)
    try:
        port = await server.start()
    except OSError as exc:
        log.error("cannot serve /health and /metrics on %s:%s: %s", s.metrics_host, s.metrics_port,
                  type(exc).__name__)
        return None
    log.info("serving /health and /metrics on %s:%s", s.metrics_host, port)
    return server
