"""The Kafka worker's figures for /health and /metrics (streams/health.py), from its context.

A thin adapter: it reads what the core, the loops and their consumers already know. Consumer
lag is the partition's high watermark minus the next offset the loop commits.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable

from replaylens.streams.health import STALE_TICKS, Figures, HealthServer, WorkerMetrics

log = logging.getLogger("replaylens.streams")


class WorkerFiguresSource:
    """Figures of one worker (its typed WorkerContext: the core and the loops it runs)."""

    def __init__(self, app: Any, ctx: Any, metrics: WorkerMetrics) -> None:
        self.app, self.ctx, self.metrics = app, ctx, metrics
        self.settings = ctx.settings

    def assigned(self) -> list[int]:
        return self.ctx.sessionize.assigned() if self.ctx.sessionize is not None else []

    def consumer_lag(self) -> dict[tuple[str, int], int]:
        """Per partition: the high watermark minus the next offset the loop will commit."""
        lag = {}
        for loop in (self.ctx.sessionize, self.ctx.summarize):
            if loop is None:
                continue
            for tp, position in list(loop.positions.items()):
                try:
                    high = loop.consumer.highwater(tp)
                except Exception:  # noqa: BLE001 - the partition was revoked meanwhile
                    continue
                if high is not None:
                    lag[(tp.topic, tp.partition)] = max(0, high - position)
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
        core = self.ctx.core
        stage, llm, materializer = core.stage, core.sink.llm, self.ctx.materializer
        return Figures(
            app_id=self.settings.app_id, assigned_partitions=self.assigned(),
            counters=core.counters.as_dict(), open_sessions=stage.open_sessions(),
            buffered_events=stage.buffered_events(), consumer_lag=self.consumer_lag(),
            batch_seconds=self.metrics.batch_seconds,
            dead_letters=dict(stage.dead_letters_by_reason),
            llm_calls=llm.stats.calls if llm else 0, llm_answers=llm.stats.answers if llm else 0,
            llm_fallbacks=dict(llm.stats.fallbacks) if llm else {},
            url_deltas_applied=materializer.applied if materializer else None,
            wall_clock_paused=stage.wall_clock_paused or bool(self.ctx.sessionize and self.ctx.sessionize.reading_stale()),
            problems=self.problems())


async def start_health_server(app: Any, ctx: Any, metrics: WorkerMetrics) -> HealthServer | None:
    """Serve /health and /metrics if a port is set; a port in use is logged, never fatal."""
    s = ctx.settings
    if not s.metrics_port:
        return None
    server = HealthServer(WorkerFiguresSource(app, ctx, metrics), s.metrics_host, s.metrics_port)
    try:
        port = await server.start()
    except OSError as exc:
        log.error("cannot serve /health and /metrics on %s:%s: %s", s.metrics_host, s.metrics_port,
                  type(exc).__name__)
        return None
    log.info("serving /health and /metrics on %s:%s", s.metrics_host, port)
    return server
