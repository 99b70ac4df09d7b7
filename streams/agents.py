"""Faust agents: thin transport around the pure stages.

- `sessionize` reads raw events (and the re-key topic) in batches, runs the SessionStage, and
  flushes dead letters, re-keys, closed sessions and session state once per batch.
- `close_idle` (timer) closes sessions whose gap has run out although no events arrive.
- `ingest_rrweb` maps whole rrweb recordings onto the events topic.
- The closed-session consumers (aggregates and summaries) are attached by `attach_summaries`.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Optional

import faust
import orjson

from replaylens.config.settings import Settings
from replaylens.streams.app import Runtime, build_app
from replaylens.streams.ingest import encode_event
from replaylens.streams.health import WorkerMetrics
from replaylens.streams.stage import Origin, SessionStage, now_ms
from replaylens.streams.worker_health import start_health_server

log = logging.getLogger("replaylens.streams")


def declare_topics(app: faust.App, s: Settings) -> dict[str, Any]:
    n = s.topic_partitions
    mk = lambda name, **kw: app.topic(name, partitions=n, value_serializer="raw",  # noqa: E731
                                      key_serializer="raw", **kw)
    return {
        "events": mk(s.topic_events),
        "rekeyed": mk(s.topic_rekeyed),
        "dead_letter": mk(s.topic_dead_letter),
        "closed": mk(s.topic_closed_sessions),
        "summaries": mk(s.topic_summaries),
        "url_deltas": mk(s.topic_url_deltas),
        "rrweb": mk(s.topic_rrweb),
        "state": mk(s.state_topic),
    }


def create_worker_app(s: Settings, attach: Optional[Callable[[faust.App, Runtime], None]] = None,
                      **app_overrides: Any) -> tuple[faust.App, Runtime]:
    app = build_app(s, **app_overrides)
    topics = declare_topics(app, s)
    runtime = Runtime(s, app, SessionStage.from_settings(s), topics)
    metrics = runtime.metrics = WorkerMetrics()  # type: ignore[attr-defined]
    source = app.topic(s.topic_events, s.topic_rekeyed, value_serializer="raw", key_serializer="raw")

    @app.agent(source, name="sessionize")
    async def sessionize(stream: faust.StreamT) -> None:
        stage = runtime.stage
        events_topic = s.topic_events
        async for batch in stream.take_events(s.batch_size, within=s.batch_within_s):
            async with runtime.lock:
                started = time.perf_counter()
                wall = now_ms()
                touched: set[int] = set()
                for event in batch:
                    msg = event.message
                    raw = msg.value
                    origin = Origin(msg.topic, msg.partition, msg.offset, msg.key)
                    if msg.topic != events_topic:
                        runtime.read_rekeyed(msg.partition, msg.offset)
                    ev = stage.decode(raw, origin, wall)
                    if ev is None:
                        continue
                    if msg.topic == events_topic:
                        if not runtime.keyed_right(ev.session_id, msg.key, msg.partition):
                            stage.out.rekeyed.append((ev.session_id, ev.json))
                            runtime.forwarded(ev.session_id, wall)
                            continue
                    else:
                        runtime.returned(ev.session_id)
                    if msg.partition not in touched:
                        await runtime.ensure_loaded(msg.partition)
                        touched.add(msg.partition)
                    stage.add(msg.partition, ev, raw, origin, wall, rekeyed=msg.topic != events_topic)
                await runtime.flush(touched, wall)
                metrics.batch_seconds.observe(time.perf_counter() - started)

    @app.timer(interval=s.tick_interval_s)
    async def close_idle() -> None:
        if app.rebalancing or app.in_recovery:
            return
        assigned = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == s.topic_events}
        async with runtime.lock:
            for p in assigned:
                await runtime.ensure_loaded(p)
            await runtime.flush(assigned, now_ms())
        runtime.write_status(sorted(assigned))
        metrics.tick()

    health: dict[str, Any] = {}

    @app.task
    async def serve_health() -> None:
        health["server"] = await start_health_server(app, runtime, metrics)

    @app.on_before_shutdown.connect
    async def stop_health(app_: faust.App, **kwargs: Any) -> None:
        if health.get("server") is not None:
            await health["server"].stop()

    @app.on_partitions_revoked.connect
    async def on_revoked(app_: faust.App, revoked: set, **kwargs: Any) -> None:
        runtime.forget({tp.partition for tp in revoked if tp.topic == s.topic_events})

    @app.agent(topics["rrweb"], name="ingest_rrweb")
    async def ingest_rrweb(stream: faust.StreamT) -> None:
        from replaylens.streams.rrweb import RrwebError, ingest_recording, options_from_settings

        options = options_from_settings(s)

        async for event in stream.events():
            msg = event.message
            origin = Origin(msg.topic, msg.partition, msg.offset, msg.key)
            key = msg.key.decode("utf-8", "replace") if msg.key else None
            try:
                events = ingest_recording(msg.value, session_id=key, options=options)
                encoded = [(ev["session_id"].encode(), encode_event(ev, s.max_event_bytes)) for ev in events]
            except Exception as exc:  # noqa: BLE001 - isolation: one recording must not stop the agent
                error = str(exc) if isinstance(exc, RrwebError) else f"could not be mapped ({type(exc).__name__})"
                runtime.stage.reject(msg.value, "invalid-recording", error, origin, key, now_ms())
                await runtime.flush((), now_ms())
                continue
            if any(value is None for _, value in encoded):
                runtime.stage.reject(msg.value, "invalid-recording", "an event of the recording cannot be "
                                     "encoded as JSON", origin, key, now_ms())
                await runtime.flush((), now_ms())
            for sid, value in encoded:
                if value is not None:
                    await topics["events"].send(key=sid, value=value)

    if attach is not None:
        attach(app, runtime)
    return app, runtime


def attach_closed_stage(s: Settings):
    """The consumer side of closed sessions: comparisons, url deltas, summaries."""

    def attach(app: faust.App, runtime: Runtime) -> None:
        from replaylens.aggregates.store import AggregateStore
        from replaylens.aggregates.urls import UrlNormalizer
        from replaylens.sinks.builtin import BuiltinSummarizer
        from replaylens.sinks.closed_stage import ClosedSessionStage
        from replaylens.sinks.profiles_store import ProfileStore
        from replaylens.sinks.summarize import build_sink
        from replaylens.streams.url_deltas import DeltaMaterializer

        store = AggregateStore(s.duckdb_path, s.aggregate_window_days, s.aggregate_retention_days)
        builtin = BuiltinSummarizer.from_settings(s)
        from replaylens.streams.profiles_topic import WorkerFeeds  # API: profiles topic, status topic

        file_profiles = ProfileStore(s.profiles_dir).all()
        sink = build_sink(s, file_profiles, builtin)
        feeds = WorkerFeeds(s, sink, file_profiles)  # keeps sink.profiles current
        stage = ClosedSessionStage(store, UrlNormalizer.from_settings(s), sink, s.comparison_min_sessions,
                                   s.baselines_exclude_automated)
        materializer = DeltaMaterializer(s.kafka_bootstrap, s.topic_url_deltas, store)
        runtime.closed_stage = stage  # type: ignore[attr-defined]
        runtime.materializer = materializer  # type: ignore[attr-defined]
        topics = runtime.topics

        @app.agent(topics["closed"], name="summarize")
        async def summarize(stream: faust.StreamT) -> None:
            async for batch in stream.take_events(200, within=0.05):
                sessions = [orjson.loads(e.message.value) for e in batch]
                result = await stage.handle(sessions, now_ms())
                pending = []
                for d in result.deltas:
                    pending.append(await topics["url_deltas"].send(
                        key=d.url.encode(), value=orjson.dumps(d.to_dict())))
                for summary in result.summaries:
                    pending.append(await topics["summaries"].send(
                        key=summary.session_id.encode(),
                        value=summary.model_dump_json().encode()))
                await asyncio.gather(*pending)

        @app.timer(interval=3600.0)
        async def apply_retention() -> None:
            await asyncio.to_thread(store.prune, now_ms())

        @app.task
        async def start_materializer() -> None:
            await materializer.start()
            await feeds.start()

        @app.on_before_shutdown.connect
        async def stop_materializer(app_: faust.App, **kwargs: Any) -> None:
            await materializer.stop()
            await feeds.stop()
            await sink.aclose()  # cancels LLM calls in flight: their offsets stay uncommitted
            store.close()

    return attach
