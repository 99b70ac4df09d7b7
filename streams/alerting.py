"""Alerting adapters around the pure engine (alerts/): on Kafka, and in the embedded run.

On Kafka, two consumer groups of their own keep alerting out of the sessionize loop:

1. map (`<app_id>-alerts-map`): reads the events, closed-sessions and summaries topics (each
   worker its share of partitions), turns messages into observations (alerts/observations.py)
   and re-keys them by normalized URL onto `<app_id>-alert-observations`. A new group starts
   at the end of the topics (alerting is about now), and records older than a few windows are
   skipped, so a backlog after an outage is not mistaken for a spike.
2. evaluate (`<app_id>-alerts-eval`): all observations of one URL meet in one partition, so
   one worker counts each URL (and the site, `*`) exactly. A timer advances the engine on the
   wall clock; alerts go to the alerts topic keyed `<url>|<signal>` (and to the webhooks).
   Each URL's state (windows, open spikes, cooldowns, held alerts) is written to the compacted
   `<app_id>-alert-state` topic in the partition of the URL, after the alerts it produced, and
   before observation offsets are committed; a worker newly assigned a partition reads it back
   first, so a restart neither re-fires an open spike nor loses one (a crash between an alert
   and its state re-sends the same alert_id: consumers dedupe by it).

Baselines come from this worker's aggregates (every worker holds all of them): same hour of day
over the rolling window, else the recent hours, else the engine's own recent windows.
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import msgspec
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from replaylens.alerts.baseline import AGGREGATE_COUNTER, HOUR_MS, Baseline, hourly_baseline
from replaylens.alerts.engine import AlertEngine
from replaylens.alerts.format import payload_for
from replaylens.alerts.observations import INCIDENT_EVENT_TYPES, Observation, ObservationExtractor
from replaylens.config.alert_rules import AlertRules, live_change_refused
from replaylens.config.settings import Settings
from replaylens.sinks.links import LinkSettings
from replaylens.streams.alert_rules_topic import EffectiveRules, SOURCE_SETTINGS, decode_rules_record, effective_rules
from replaylens.streams.ingest import Accepted
from replaylens.streams.profiles_topic import CompactedView, ensure_compacted_topics
from replaylens.streams.topics import create_missing
from replaylens.streams.worker import expected_partition, read_compacted

log = logging.getLogger("replaylens.alerts")

STATE_MAX_BYTES = 8 * 1024 * 1024     # one URL's state: windows of sessions, seen ids
STATE_FLUSH_S = 1.0                   # state is written (then offsets committed) this often
MAP_BATCH_MS = 200
MAX_TICK_S = 1.0
CATCH_UP_MAX_S = 30.0                 # evaluation waits at most this long for the stages' backlog
STALE_WINDOWS = 3                     # map: records older than this many windows are skipped,
MIN_STALE_MS = 60_000                 # ...but never younger than this (a worker restart)
# The event types that can be incidents: anything else is skipped without decoding it.
_INCIDENT_TYPE = re.compile(rb'"type"\s*:\s*"(?:rage-click|dead-click|error-click|mouse-thrash|'
                            rb'console-error|network-error|web-vitals)"')


class _IncidentFields(msgspec.Struct):
    """The fields of an event message `ObservationExtractor.from_event` reads, as JSON has them
    (any type: judged there, as on a fully decoded message); the rest is skipped unread."""

    session_id: Any = None
    timestamp: Any = None
    type: Any = None
    event_id: Any = None
    url: Any = None
    error: Any = None
    metrics: Any = None


_decode_incident = msgspec.json.Decoder(_IncidentFields).decode
# A summary is observed only when its outcome status is "abandoned" (ObservationExtractor.from_summary):
# a summary whose JSON lacks the word is skipped without decoding it (~8 KB each).
ABANDONED_JSON = b'"abandoned"'


def wall_ms() -> int:
    return int(time.time() * 1000)


def alert_key(alert: dict[str, Any]) -> bytes:
    return f"{alert['url']}|{alert['signal']}".encode()


def make_engine(settings: Settings, baselines: Optional[Callable[[str, str, int], Optional[Baseline]]] = None,
                rules: Optional[AlertRules] = None) -> AlertEngine:
    links = LinkSettings(settings.link_template, settings.replay_base_url)
    kwargs: dict[str, Any] = {"link": links.link}
    if baselines is not None:
        kwargs["baselines"] = baselines
    return AlertEngine(rules or settings.rules, **kwargs)


# The aggregates' counters a baseline reads, and how many (url, hour) of them are kept.
BASELINE_COLUMNS = tuple(sorted(set(AGGREGATE_COUNTER.values())))
CACHED_URL_HOURS = 10_000


def _none() -> None:
    return None


class AggregateBaselines:
    """Hourly counts of a URL's signal from the aggregates, cached per URL and hour."""

    def __init__(self, store: Any, rules: AlertRules, window_days: int) -> None:
        self.store, self.rules, self.window_days = store, rules, window_days
        self._cache: dict[tuple[str, int], dict[str, dict[int, float]]] = {}
        # (hour, the store's write count when read, rows per URL): every URL's rows of one window
        self._all_urls: Optional[tuple[int, int, dict[str, list[tuple]]]] = None

    def __call__(self, url: str, signal: str, at_ms: int) -> Optional[Baseline]:
        return self.deferred(url, signal, at_ms)()

    def deferred(self, url: str, signal: str, at_ms: int) -> Callable[[], Optional[Baseline]]:
        """The store read now (the aggregates fill as sessions close: the figures are this
        moment's), the baseline worked out from them when asked (alerts/engine.py)."""
        counter = AGGREGATE_COUNTER.get(signal)
        if counter is None or self.store is None:
            return _none
        hours = self._hours(url, at_ms).get(counter) or {}
        rules = self.rules
        return lambda: hourly_baseline(hours, at_ms, rules.window_ms, rules.baseline_min_days,
                                       rules.baseline_recent_hours)

    def _hours(self, url: str, at_ms: int) -> dict[str, dict[int, float]]:
        hour = at_ms - at_ms % HOUR_MS
        key = (url, hour)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        if len(self._cache) > CACHED_URL_HOURS:
            self._cache.clear()
        try:
            rows = self._rows(url, hour)
        except Exception as exc:  # a closed or busy store must not stop alerting
            log.warning("alert baselines: aggregates unreadable (%s); using recent windows", exc)
            return {}
        result: dict[str, dict[int, float]] = {c: {} for c in BASELINE_COLUMNS}
        for row in rows:
            for i, column in enumerate(BASELINE_COLUMNS, start=1):
                result[column][int(row[0])] = float(row[i])
        self._cache[key] = result
        return result

    def _rows(self, url: str, hour: int) -> list[tuple]:
        """The URL's hourly rows of the window before `hour`, as a query of this URL alone would
        read them now. A store that counts its writes is read for every URL at once, again only
        when it has been written since (one query per hour and flush instead of one per URL)."""
        start = hour - self.window_days * 24 * HOUR_MS
        columns = ", ".join(BASELINE_COLUMNS)
        writes = getattr(self.store, "writes", None)
        if writes is None:
            return self.store.query(f"SELECT epoch_ms(bucket), {columns} FROM url_hourly "
                                    "WHERE url = ? AND bucket >= epoch_ms(?) AND bucket < epoch_ms(?)",
                                    [url, start, hour])[1]
        if self._all_urls is None or self._all_urls[:2] != (hour, writes):
            _cols, rows = self.store.query(f"SELECT url, epoch_ms(bucket), {columns} FROM url_hourly "
                                           "WHERE bucket >= epoch_ms(?) AND bucket < epoch_ms(?)", [start, hour])
            by_url: dict[str, list[tuple]] = {}
            for row in rows:
                by_url.setdefault(row[0], []).append(row[1:])
            self._all_urls = (hour, writes, by_url)  # `writes` read before the query: never newer
        return self._all_urls[2].get(url, [])


# -- webhooks -----------------------------------------------------------------------------------
def webhook_sender(settings: Settings, **policy_overrides: Any) -> Any:
    """The shared guarded sender (sinks/webhooks.py) under the REPLAYLENS_WEBHOOK_* limits."""
    from replaylens.sinks.webhooks import WebhookPolicy, WebhookSender

    if hasattr(settings, "webhook_allow_networks"):
        policy = WebhookPolicy.from_settings(settings, **policy_overrides)
    else:  # settings of the API's webhooks not merged yet: its defaults (public addresses only)
        policy = WebhookPolicy(**policy_overrides)
    return WebhookSender(policy)


class AlertDelivery:
    """Posts every alert to the configured webhooks in the background (Slack text or JSON)."""

    def __init__(self, targets: Iterable[Any], sender: Any) -> None:
        self.targets, self.sender = list(targets), sender
        self.results: list[Any] = []
        self._pending: set[asyncio.Task] = set()

    async def deliver(self, alert: dict[str, Any]) -> list[Any]:
        results = await asyncio.gather(*(self.sender.deliver(t.url, payload_for(alert, t.format))
                                         for t in self.targets))
        for r in results:
            if not r.delivered:
                log.warning("alert %s not delivered to a webhook: %s", alert["alert_id"], r.reason)
        self.results += results
        return list(results)

    def submit(self, alert: dict[str, Any]) -> None:
        if not self.targets:
            return
        task = asyncio.create_task(self.deliver(alert))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def close(self, timeout_s: float = 5.0) -> None:
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=timeout_s)
        await self.sender.close()


# -- Kafka --------------------------------------------------------------------------------------
async def ensure_alert_topics(s: Settings) -> None:
    """The alerts topic and the two internal ones (same partition count as the pipeline)."""
    configs = {s.alert_state_topic: {"cleanup.policy": "compact", "max.message.bytes": str(STATE_MAX_BYTES)}}
    names = [s.topic_alerts, s.alert_observations_topic, s.alert_state_topic]
    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap)
    await admin.start()
    try:
        await create_missing(admin, [NewTopic(n, s.topic_partitions, s.topic_replication,
                                              topic_configs=configs.get(n, {})) for n in names])
    finally:
        await admin.close()


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, service: "AlertService") -> None:
        self.service = service

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.service.release({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.service.load({tp.partition for tp in assigned})


class AlertService:
    """The two alerting stages of one worker (see the module docstring)."""

    def __init__(self, settings: Settings, store: Any = None, delivery: Optional[AlertDelivery] = None) -> None:
        self.s = settings
        self.rules = settings.rules
        self.rules_in_force = EffectiveRules(self.rules, SOURCE_SETTINGS)
        self.baselines = AggregateBaselines(store, self.rules, settings.aggregate_window_days) if store is not None else None
        self.engine = make_engine(settings, self.baselines, self.rules)
        self.extractor = ObservationExtractor.from_settings(settings)
        self.delivery = delivery
        self.lock = asyncio.Lock()
        self.partitions = settings.topic_partitions
        self.published = 0
        self.muted = 0  # alerts not published because the rules say enabled: false
        self.mapped = 0
        # Both stages read their backlog once (after start, after an assignment) before windows
        # are evaluated: a restarted worker must not judge the windows of its downtime empty.
        self.caught_up = {"map": False, "evaluate": False}
        self.catching_up_since = time.monotonic()
        self.rules_feed = CompactedView(settings.kafka_bootstrap, settings.topic_alert_rules, decode_rules_record,
                                        self._on_rules)
        self._tasks: list[asyncio.Task] = []
        self._consumers: list[AIOKafkaConsumer] = []
        self._producer: Optional[AIOKafkaProducer] = None
        self._eval: Optional[AIOKafkaConsumer] = None

    async def start(self) -> None:
        s = self.s
        await ensure_alert_topics(s)
        await ensure_compacted_topics(s, [s.topic_alert_rules])
        await self.rules_feed.start()
        self._producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks="all", linger_ms=5,
                                          max_request_size=STATE_MAX_BYTES)
        await self._producer.start()
        # URL -> partition as the producer places observations (the topic may predate us).
        self.partitions = len(await self._producer.partitions_for(s.alert_observations_topic))
        mapper = AIOKafkaConsumer(bootstrap_servers=s.kafka_bootstrap, group_id=f"{s.app_id}-alerts-map",
                                  enable_auto_commit=False, auto_offset_reset="latest")
        mapper.subscribe([s.topic_events, s.topic_closed_sessions, s.topic_summaries])
        self._eval = AIOKafkaConsumer(bootstrap_servers=s.kafka_bootstrap, group_id=f"{s.app_id}-alerts-eval",
                                      enable_auto_commit=False, auto_offset_reset="earliest")
        self._eval.subscribe([s.alert_observations_topic], listener=_Rebalance(self))
        for consumer in (mapper, self._eval):
            await consumer.start()
            self._consumers.append(consumer)
        self._tasks = [asyncio.create_task(self._map(mapper), name="alerts-map"),
                       asyncio.create_task(self._evaluate(), name="alerts-evaluate"),
                       asyncio.create_task(self._tick(), name="alerts-tick")]

    async def _on_rules(self, values: dict[str, Any]) -> None:
        """The rules topic changed: apply the API's rules (or the settings' again) from the next
        evaluation on; a change of the window layout is refused (the API refuses it too)."""
        wanted = effective_rules(self.s.rules, values)
        refused = live_change_refused(self.rules, wanted.rules)
        if refused is not None:
            log.warning("alert rules from %s not applied: %s", wanted.source, refused)
            return
        async with self.lock:
            self.rules, self.rules_in_force = wanted.rules, wanted
            self.engine.update_rules(wanted.rules)
            if self.baselines is not None:
                self.baselines.rules = wanted.rules
        log.warning("alert rules now from %s", wanted.source)
        self.write_status()

    async def stop(self) -> None:
        await self.rules_feed.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        if self._producer is not None and self._eval is not None:
            async with self.lock:   # the last state, then the offsets it covers
                await self._persist()
            try:
                await self._eval.commit()
            except Exception as exc:
                log.info("alerts: commit at stop failed: %s", exc)
        for consumer in self._consumers:
            await consumer.stop()
        if self._producer is not None:
            await self._producer.stop()
        if self.delivery is not None:
            await self.delivery.close()

    # -- stage 1: map ---------------------------------------------------------------------------
    def observations_of(self, topic: str, value: bytes) -> list[Observation]:
        if topic == self.s.topic_summaries and ABANDONED_JSON not in value:
            return []  # only an abandoned outcome is observed: most summaries need no decoding
        try:
            data = orjson.loads(value)
        except orjson.JSONDecodeError:
            return []   # the sessionize stage dead-letters bad events; alerting just skips them
        if not isinstance(data, dict):
            return []
        try:
            if topic == self.s.topic_events:
                return self.extractor.from_event(data)
            if topic == self.s.topic_closed_sessions:
                return self.extractor.from_closed_session(data)
            return self.extractor.from_summary(data)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            log.debug("alerts: skipped a %s record: %s", topic, exc)
            return []

    async def _map(self, consumer: AIOKafkaConsumer) -> None:
        topic = self.s.alert_observations_topic
        stale_ms = max(self.rules.window_ms * STALE_WINDOWS, MIN_STALE_MS)
        while True:
            batches = await consumer.getmany(timeout_ms=MAP_BATCH_MS, max_records=5_000)
            if not batches:
                self.caught_up["map"] = True
                continue
            oldest = wall_ms() - stale_ms
            pending = []
            for tp, records in batches.items():
                for rec in records:
                    if rec.value is None or rec.timestamp < oldest:
                        continue
                    for obs in self.observations_of(tp.topic, rec.value):
                        pending.append(await self._producer.send(
                            topic, key=obs.url.encode(), value=orjson.dumps(obs.to_dict())))
            if pending:
                await asyncio.gather(*pending)
                self.mapped += len(pending)
            await consumer.commit()
            if not self.caught_up["map"]:
                self.caught_up["map"] = await read_to_end(consumer)

    # -- stage 2: evaluate ----------------------------------------------------------------------
    def partition_of(self, url: str) -> int:
        return expected_partition(url, self.partitions)

    async def load(self, partitions: set[int]) -> None:
        """Resume the alert state of newly assigned partitions before counting their observations."""
        async with self.lock:
            self.caught_up["evaluate"] = False
            self.catching_up_since = time.monotonic()
            for p in partitions:
                records = (await read_compacted(self.s.kafka_bootstrap, self.s.alert_state_topic, [p]))[p]
                states = {key.decode(): value for key, value in records.items()}
                for data in states.values():
                    self.engine.import_state(data)
                if states:
                    log.info("alerts: partition %s resumed %s URL states", p, len(states))

    async def release(self, partitions: set[int]) -> None:
        async with self.lock:
            await self._persist()
            if self._eval is not None:
                try:
                    await self._eval.commit()
                except Exception as exc:  # a rebalance in progress: the state is written anyway
                    log.info("alerts: commit at revoke failed: %s", exc)
            self.engine.forget([u for u in list(self.engine.states) if self.partition_of(u) in partitions])

    async def _persist(self) -> None:
        pending = []
        for url in self.engine.drain_dirty():
            data = self.engine.export_state(url)
            pending.append(await self._producer.send(
                self.s.alert_state_topic, key=url.encode(), partition=self.partition_of(url),
                value=None if data is None else orjson.dumps(data)))
        if pending:
            await asyncio.gather(*pending)

    async def _evaluate(self) -> None:
        last_flush = 0.0
        while True:
            batches = await self._eval.getmany(timeout_ms=MAP_BATCH_MS, max_records=5_000)
            if not self.caught_up["evaluate"]:
                self.caught_up["evaluate"] = not batches or await read_to_end(self._eval)
            flush = bool(batches) and time.monotonic() - last_flush >= STATE_FLUSH_S
            async with self.lock:
                now = wall_ms()
                for records in batches.values():
                    self.engine.observe(_decoded(records), now)
                if flush:
                    await self._persist()
            if flush:  # outside the lock: a commit may wait for a rebalance, whose hooks take it
                try:
                    await self._eval.commit()
                except Exception as exc:
                    log.info("alerts: commit failed (rebalance?): %s", exc)
                last_flush = time.monotonic()

    async def _tick(self) -> None:
        interval = min(MAX_TICK_S, self.rules.step_ms / 2000)
        while True:
            await asyncio.sleep(interval)
            if not all(self.caught_up.values()) and time.monotonic() - self.catching_up_since > CATCH_UP_MAX_S:
                log.warning("alerts: backlog not read to its end in %s s; evaluating anyway", CATCH_UP_MAX_S)
                self.caught_up = dict.fromkeys(self.caught_up, True)
            if all(self.caught_up.values()):
                await self.tick(wall_ms() - self.rules.evaluation_delay_ms)
            else:
                self.write_status()

    def write_status(self) -> None:
        """<data_dir>/alerts-status.json: what this worker's alerting is doing (atomic replace)."""
        open_spikes = [{"url": st.url, "signal": sig, "since": tr.open.get("fired_at")}
                       for st in self.engine.states.values() for sig, tr in st.tracks.items() if tr.open]
        status = {"written_at": wall_ms(), "observations_mapped": self.mapped, "alerts_published": self.published,
                  "alerts_muted": self.muted, "urls_tracked": len(self.engine.states), "open_spikes": open_spikes,
                  "evaluated_until": self.engine.evaluated_until, "caught_up": dict(self.caught_up),
                  "rules": self.rules_in_force.describe()}
        path = Path(self.s.data_dir) / "alerts-status.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(status, option=orjson.OPT_INDENT_2))
        os.replace(tmp, path)

    async def tick(self, now_ms: int) -> list[dict[str, Any]]:
        async with self.lock:
            alerts = self.engine.advance(now_ms)
            if alerts and not self.rules.enabled:  # muted through the API: counted, state kept
                self.muted += len(alerts)
                alerts = []
            if alerts:
                await asyncio.gather(*[await self._producer.send(
                    self.s.topic_alerts, key=alert_key(a), value=orjson.dumps(a)) for a in alerts])
                self.published += len(alerts)
            await self._persist()
        self.write_status()
        for a in alerts:
            log.warning("alert: %s", a["text"].splitlines()[0])
            if self.delivery is not None:
                self.delivery.submit(a)
        return alerts


async def read_to_end(consumer: AIOKafkaConsumer) -> bool:
    """Whether the consumer has read every assigned partition up to its last fetched high water."""
    for tp in consumer.assignment():
        high = consumer.highwater(tp)
        if high is None or await consumer.position(tp) < high:
            return False
    return True


def _decoded(records: Iterable[Any]) -> list[Observation]:
    out = []
    for r in records:
        try:
            out.append(Observation.from_dict(orjson.loads(r.value)))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("alerts: skipped a malformed observation at offset %s", r.offset)
    return out


def attach_alerting(s: Settings) -> Callable[[Any, Any], None]:
    """Faust hook: start the alert service with the worker (after the closed-session stage, whose
    aggregates store gives the baselines), stop it before shutdown."""

    def attach(app: Any, ctx: Any) -> None:
        if not s.rules.enabled:
            return
        store = ctx.core.store  # None in a summarize-only worker: the engine's own history then
        delivery = AlertDelivery(s.alert_webhooks, webhook_sender(s)) if s.alert_webhooks else None
        service = AlertService(s, store, delivery)
        ctx.alerts = service

        @app.task
        async def start_alerts() -> None:
            await service.start()

        @app.on_before_shutdown.connect
        async def stop_alerts(app_: Any, **kwargs: Any) -> None:
            await service.stop()

    return attach


# -- the embedded run ---------------------------------------------------------------------------
class EmbeddedAlerts:
    """The engine on event time for `replaylens run`: alerts to <data_dir>/alerts.ndjson."""

    def __init__(self, settings: Settings, store: Any = None) -> None:
        self.rules = settings.rules
        baselines = AggregateBaselines(store, self.rules, settings.aggregate_window_days) if store is not None else None
        self.engine = make_engine(settings, baselines, self.rules)
        self.extractor = ObservationExtractor.from_settings(settings)
        self.path = settings.alerts_path or settings.data_dir / "alerts.ndjson"
        self.alerts: list[dict[str, Any]] = []
        self.clock: Optional[int] = None
        self._next_step: Optional[int] = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "wb")

    def feed(self, accepted: Optional[Accepted], raw: Any) -> None:
        """One event message after the stage: `accepted` is what the stage decoded (None when it
        rejected the message). Its type says whether the message can count at all (most cannot:
        nothing more is read); one that can is read for the few fields observations use, from the
        message as sent, as the Kafka mapper reads the events topic. A rejected message is
        judged as the mapper would judge it (`feed_raw`)."""
        if accepted is None:
            self.feed_raw(raw)
        elif accepted.type in INCIDENT_EVENT_TYPES:
            try:
                fields = _decode_incident(raw if isinstance(raw, (bytes, str)) else str(raw))
            except msgspec.DecodeError:
                return
            self._observe_event(fields.type, fields.session_id, fields.timestamp, fields.event_id, fields.url,
                                fields.error, fields.metrics)

    def feed_raw(self, raw: Any) -> None:
        """One raw event message: most carry nothing to count and are skipped without decoding."""
        data = raw if isinstance(raw, bytes) else str(raw).encode()
        if _INCIDENT_TYPE.search(data) is None:
            return
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(event, dict):
            return
        g = event.get
        self._observe_event(g("type"), g("session_id"), g("timestamp"), g("event_id"), g("url"), g("error"),
                            g("metrics"))

    def _observe_event(self, kind: Any, session_id: Any, ts: Any, event_id: Any, url: Any, error: Any,
                       metrics: Any) -> None:
        """The clock (event time: the latest incident-type event's timestamp), the event's
        observations, and the windows due by then."""
        if isinstance(ts, int) and (self.clock is None or ts > self.clock):
            self.clock = ts
        if self.clock is None:
            return
        try:
            observations = self.extractor.from_fields(kind, session_id, ts, event_id, url, error, metrics)
        except (TypeError, ValueError, AttributeError):
            return
        self.engine.observe(observations, self.clock)
        self._maybe_advance()

    def feed_closed(self, sessions: Iterable[dict[str, Any]], summaries: Iterable[Any] = ()) -> None:
        if self.clock is None:
            return
        observations = [o for s in sessions for o in self.extractor.from_closed_session(s)]
        for summary in summaries:
            data = summary if isinstance(summary, dict) else summary.model_dump(mode="json")
            observations += self.extractor.from_summary(data)
        self.engine.observe(observations, self.clock)

    def _maybe_advance(self) -> None:
        if self._next_step is None or self.clock >= self._next_step:
            self._write(self.engine.advance(self.clock))
            step = self.rules.step_ms
            self._next_step = self.clock - self.clock % step + step

    def _write(self, alerts: list[dict[str, Any]]) -> None:
        if alerts:
            self.alerts += alerts
            self._file.write(b"".join(orjson.dumps(a) + b"\n" for a in alerts))

    def close(self) -> None:
        if self.clock is not None:
            self._write(self.engine.advance(self.clock))
        self._file.close()
