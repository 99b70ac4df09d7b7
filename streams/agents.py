"""The worker's Faust app: lifecycle, timers and the rrweb agent around the hot loops.

- role `sessionize`: the `SessionizeLoop` (events and re-keys in; dead letters, re-keys, closed
  sessions with comparisons, url deltas and state out), the url-delta materializer that keeps this
  worker's DuckDB baseline complete, the retention timer, and `ingest_rrweb` (whole recordings
  mapped onto the events topic).
- role `summarize`: the `SummarizeLoop` (closed sessions in, summaries out).
- both: the status file, every tick; /health and Prometheus /metrics (`streams/health.py`); the
  API's feeds (streaming profiles from the profiles topic, counters to the status topic); the
  alert service (`streams/alerting.py`) when alert rules are enabled.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

import faust
import orjson

from replaylens.config.settings import Settings
from replaylens.sinks.profiles_store import ProfileStore
from replaylens.streams.alerting import attach_alerting
from replaylens.streams.app import WorkerContext, build_app
from replaylens.streams.health import WorkerMetrics
from replaylens.streams.ingest import encode_event
from replaylens.streams.profiles_topic import WorkerFeeds
from replaylens.streams.stage import Origin, dead_letter, now_ms
from replaylens.streams.url_deltas import DeltaMaterializer
from replaylens.streams.wiring import build_core
from replaylens.streams.worker import SessionizeLoop, SummarizeLoop, build_producer, too_large_dead_letter
from replaylens.streams.worker_health import start_health_server

log = logging.getLogger("replaylens.streams")


def declare_topics(app: faust.App, s: Settings) -> dict[str, Any]:
    n = s.topic_partitions
    mk = lambda name, **kw: app.topic(name, partitions=n, value_serializer="raw",  # noqa: E731
                                      key_serializer="raw", **kw)
    return {"events": mk(s.topic_events), "dead_letter": mk(s.topic_dead_letter), "rrweb": mk(s.topic_rrweb)}


def create_worker_app(s: Settings, **app_overrides: Any) -> tuple[faust.App, WorkerContext]:
    roles = s.roles
    app = build_app(s, **app_overrides)
    core = build_core(s, with_store="sessionize" in roles)
    ctx = WorkerContext(s, app, core, roles, declare_topics(app, s))
    metrics = WorkerMetrics()
    # The API's profiles reach the summarizer without a restart; file profiles stay as they are.
    feeds = WorkerFeeds(s, core.sink, ProfileStore(s.profiles_dir).all())

    async def supervised(name: str, run: Callable[[], Awaitable[None]]) -> None:
        """A loop that raises is a bug, not input: crash the app (its supervisor restarts it)
        rather than stall silently."""
        try:
            await run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported to Faust, which stops the worker
            if ctx.stopping:  # e.g. its consumer was stopped under it: the shutdown's doing
                return
            log.exception("%s loop failed", name)
            await app.crash(exc)

    @app.task
    async def start_loops() -> None:
        ctx.producer = build_producer(s)
        await ctx.producer.start()
        if "sessionize" in roles:
            ctx.materializer = DeltaMaterializer(s.kafka_bootstrap, s.topic_url_deltas, core.store)
            await ctx.materializer.start()
            ctx.sessionize = SessionizeLoop(core, ctx.producer)
            ctx.sessionize.on_batch = metrics.batch_seconds.observe
            ctx.tasks.append(asyncio.create_task(supervised("sessionize", ctx.sessionize.run), name="sessionize"))
        if "summarize" in roles:
            ctx.summarize = SummarizeLoop(core, ctx.producer)
            ctx.tasks.append(asyncio.create_task(supervised("summarize", ctx.summarize.run), name="summarize"))
        await feeds.start()
        ctx.health = await start_health_server(app, ctx, metrics)

    @app.timer(interval=s.tick_interval_s)
    async def status() -> None:
        ctx.write_status()
        metrics.tick()

    @app.on_before_shutdown.connect
    async def stop_loops(app_: faust.App, **kwargs: Any) -> None:
        """Bounded: the sessionize batch in progress finishes; summaries get
        `shutdown_timeout_s`, then are cancelled and left uncommitted for the next worker."""
        ctx.stopping = True
        if ctx.health is not None:
            await ctx.health.stop()
        await feeds.stop()
        if ctx.summarize is not None:
            await ctx.summarize.stop(s.shutdown_timeout_s)
        if ctx.sessionize is not None:
            await asyncio.wait_for(ctx.sessionize.stop(), s.shutdown_timeout_s)
        if ctx.materializer is not None:
            await ctx.materializer.stop()
        for task in ctx.tasks:
            task.cancel()
        await asyncio.gather(*ctx.tasks, return_exceptions=True)
        if ctx.producer is not None:
            await ctx.producer.stop()
        await core.aclose()

    if "sessionize" in roles:
        attach_sessionize_agents(app, ctx)
    attach_alerting(s)(app, ctx)
    return app, ctx


def attach_sessionize_agents(app: faust.App, ctx: WorkerContext) -> None:
    s, core, topics = ctx.settings, ctx.core, ctx.topics

    @app.timer(interval=s.retention_interval_s)
    async def apply_retention() -> None:
        await asyncio.to_thread(core.store.prune, now_ms())

    @app.agent(topics["rrweb"], name="ingest_rrweb")
    async def ingest_rrweb(stream: faust.StreamT) -> None:
        from replaylens.streams.rrweb import RrwebError, ingest_recording, options_from_settings

        options = options_from_settings(s)
        async for event in stream.events():
            msg = event.message
            origin = Origin(msg.topic, msg.partition, msg.offset, msg.key)
            key = msg.key.decode("utf-8", "replace") if msg.key else None
            try:
                # The recording's own session id (PostHog export, extension download) wins over the key.
                events = ingest_recording(msg.value, session_id=key, options=options)
                encoded = [(ev["session_id"].encode(), encode_event(ev, s.max_event_bytes)) for ev in events]
            except (RrwebError, ValueError) as exc:
                await reject_recording(msg.value, "invalid-recording", str(exc), origin, key)
                continue
            except Exception as exc:  # noqa: BLE001 - per-message isolation: counted and dead-lettered
                core.counters.internal_errors += 1
                log.warning("internal error mapping %s[%s]@%s: %s (dead-lettered)", msg.topic,
                            msg.partition, msg.offset, type(exc).__name__)
                await reject_recording(msg.value, "internal-error", f"{type(exc).__name__} while mapping",
                                       origin, key)
                continue
            if not events:
                await reject_recording(msg.value, "invalid-recording", "the recording holds no events", origin, key)
                continue
            if any(value is None for _, value in encoded):
                await reject_recording(msg.value, "invalid-recording",
                                       "an event of the recording cannot be encoded as JSON", origin, key)
            for sid, value in encoded:
                if value is not None:
                    await topics["events"].send(key=sid, value=value)

    async def reject_recording(raw: bytes, reason: str, error: str, origin: Origin, key: Any) -> None:
        if reason != "internal-error":
            core.counters.rejected += 1
        if len(raw) > s.producer_max_request_size // 2:  # quoting must not make it unsendable
            dl = too_large_dead_letter(origin.topic or "", origin.key, raw, ValueError(error), key)
            dl.update(reason=reason, error=error, partition=origin.partition, offset=origin.offset)
        else:
            dl = dead_letter(raw, reason, error, origin, key, now_ms(), core.stage.decoder.masker,
                             s.dead_letter_excerpt_bytes)
            core.stage.dead_letters_by_reason[reason] += 1
        await topics["dead_letter"].send(key=key.encode() if key else None, value=orjson.dumps(dl))
