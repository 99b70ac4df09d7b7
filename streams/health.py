"""`/health` and Prometheus `/metrics` for a worker (aiohttp), fed by a small typed source.

The server knows nothing of Faust: it asks a `FiguresSource` for one `Figures` snapshot per
request. The worker's adapter (streams/worker_health.py) fills it from its runtime; any other
runner can feed its own. Rendering is pure (`render_metrics`, `health_report`) and tested alone.

/health answers 200 with a JSON body when the worker is healthy, 503 with the problems when not
(docker-compose uses it as the workers' healthcheck). /metrics is Prometheus' text format 0.0.4.
"""
from __future__ import annotations

import logging
import time
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Mapping, Optional, Protocol, Sequence

from aiohttp import web

log = logging.getLogger(__name__)

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Seconds: a batch of up to a few thousand events takes milliseconds to a second or two.
BATCH_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# The worker is stuck when its periodic tick has not run for this many tick intervals.
STALE_TICKS = 10


@dataclass
class Histogram:
    """A Prometheus histogram: cumulative bucket counts, sum and count of observations."""

    buckets: Sequence[float] = BATCH_SECONDS_BUCKETS
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.buckets) + 1)  # the last one is +Inf

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.total += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        out, running = [], 0
        for bound, n in zip([*map(_number, self.buckets), "+Inf"], self.counts):
            running += n
            out.append((bound, running))
        return out


@dataclass
class WorkerMetrics:
    """What only the transport can measure, kept by it: batch latency and the last tick."""

    batch_seconds: Histogram = field(default_factory=Histogram)
    last_tick: Optional[float] = None  # time.monotonic() of the last periodic tick
    started: float = field(default_factory=time.monotonic)

    def tick(self) -> None:
        self.last_tick = time.monotonic()

    def tick_age_s(self) -> float:
        return time.monotonic() - (self.last_tick if self.last_tick is not None else self.started)


@dataclass(frozen=True)
class Figures:
    """One snapshot of a worker, everything /health and /metrics show."""

    app_id: str
    assigned_partitions: Sequence[int] = ()
    counters: Mapping[str, int] = field(default_factory=dict)  # status.json's counters
    open_sessions: int = 0
    buffered_events: int = 0
    consumer_lag: Mapping[tuple[str, int], int] = field(default_factory=dict)  # (topic, partition) -> messages
    batch_seconds: Histogram = field(default_factory=Histogram)
    dead_letters: Mapping[str, int] = field(default_factory=dict)  # by reason
    llm_calls: int = 0
    llm_answers: int = 0
    llm_fallbacks: Mapping[str, int] = field(default_factory=dict)  # by cause
    url_deltas_applied: Optional[int] = None
    wall_clock_paused: bool = False
    problems: Sequence[str] = ()  # why it is unhealthy; none = healthy


class FiguresSource(Protocol):
    def figures(self) -> Figures: ...


def _number(value: float) -> str:
    v = float(value)
    return str(int(v)) if v.is_integer() and abs(v) < 2 ** 53 else repr(v)


def _label(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str,
               samples: Sequence[tuple[Mapping[str, object], float]], suffix: str = "") -> None:
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for labels, value in samples:
            rendered = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            self.lines.append(f"{name}{suffix}{{{rendered}}} {_number(value)}" if rendered
                              else f"{name}{suffix} {_number(value)}")

    def histogram(self, name: str, help_text: str, h: Histogram) -> None:
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        for bound, n in h.cumulative():
            self.lines.append(f'{name}_bucket{{le="{bound}"}} {n}')
        self.lines += [f"{name}_sum {_number(h.total)}", f"{name}_count {h.count}"]


def render_metrics(f: Figures) -> str:
    """The snapshot in Prometheus' text exposition format."""
    x = _Exposition()
    x.family("replaylens_up", "gauge", "1 while the worker serves metrics", [({}, 1)])
    x.family("replaylens_healthy", "gauge", "1 when /health answers 200", [({}, 0 if f.problems else 1)])
    x.family("replaylens_events_total", "counter",
             "Sessionizer outcomes by kind (status.json counters: accepted, rejected, duplicates, late, "
             "rekeyed, sessions_closed)", [({"outcome": k}, v) for k, v in sorted(f.counters.items())])
    x.family("replaylens_assigned_partitions", "gauge", "Partitions of the events topic assigned to this worker",
             [({}, len(f.assigned_partitions))])
    x.family("replaylens_open_sessions", "gauge", "Session windows open in memory", [({}, f.open_sessions)])
    x.family("replaylens_buffered_events", "gauge", "Events held in open sessions", [({}, f.buffered_events)])
    x.family("replaylens_consumer_lag", "gauge", "Messages not yet committed, per topic partition",
             [({"topic": t, "partition": p}, lag) for (t, p), lag in sorted(f.consumer_lag.items())])
    x.histogram("replaylens_batch_seconds", "Time to process one batch of the sessionize agent", f.batch_seconds)
    x.family("replaylens_dead_letters_total", "counter", "Messages sent to the dead-letter topic, by reason",
             [({"reason": r}, n) for r, n in sorted(f.dead_letters.items())])
    x.family("replaylens_llm_calls_total", "counter", "Summaries that asked the LLM", [({}, f.llm_calls)])
    x.family("replaylens_llm_answers_total", "counter", "LLM answers used in a summary", [({}, f.llm_answers)])
    x.family("replaylens_llm_fallbacks_total", "counter", "LLM summaries that fell back to the built-in one, by cause",
             [({"cause": c}, n) for c, n in sorted(f.llm_fallbacks.items())])
    x.family("replaylens_wall_clock_paused", "gauge", "1 while the worker cannot read from the broker",
             [({}, 1 if f.wall_clock_paused else 0)])
    if f.url_deltas_applied is not None:
        x.family("replaylens_url_deltas_applied_total", "counter", "Per-URL deltas applied to this worker's DuckDB",
                 [({}, f.url_deltas_applied)])
    return "\n".join(x.lines) + "\n"


def health_report(f: Figures) -> tuple[int, dict[str, object]]:
    """(HTTP status, JSON body) of /health."""
    body: dict[str, object] = {
        "status": "unhealthy" if f.problems else "ok", "problems": list(f.problems), "app_id": f.app_id,
        "assigned_partitions": list(f.assigned_partitions), "counters": dict(f.counters),
        "open_sessions": f.open_sessions, "buffered_events": f.buffered_events,
        "consumer_lag": sum(f.consumer_lag.values()), "wall_clock_paused": f.wall_clock_paused,
    }
    return (503 if f.problems else 200), body


class HealthServer:
    """Serves /health and /metrics from `source` on host:port (port 0: any free port)."""

    def __init__(self, source: FiguresSource, host: str, port: int) -> None:
        self.source, self.host, self.port = source, host, port
        self._runner: Optional[web.AppRunner] = None

    async def start(self) -> int:
        """Start serving; returns the bound port."""
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _health(self, request: web.Request) -> web.Response:
        try:
            code, body = health_report(self.source.figures())
        except Exception as exc:  # noqa: BLE001 - a broken figure must still answer
            code, body = 503, {"status": "unhealthy", "problems": [f"figures unavailable: {type(exc).__name__}"]}
        return web.json_response(body, status=code)

    async def _metrics(self, request: web.Request) -> web.Response:
        try:
            text = render_metrics(self.source.figures())
        except Exception as exc:  # noqa: BLE001
            log.error("metrics unavailable: %s", type(exc).__name__)
            return web.Response(status=500, text=f"figures unavailable: {type(exc).__name__}\n")
        return web.Response(body=text.encode(), headers={"Content-Type": PROMETHEUS_CONTENT_TYPE})
