"""Compacted topics shared by the API and the workers: profiles and worker status.

- Profiles: the API writes each profile created through it to `REPLAYLENS_TOPIC_PROFILES`
  (compacted, keyed by profile id, a tombstone when deleted); every worker reads the whole topic
  and keeps its summarizer sink's streaming profiles current, so a new streaming profile reaches
  running workers without a restart. Profile files (REPLAYLENS_PROFILES_DIR) and the built-in
  default stay; a topic profile with the same id replaces a file one.
- Worker status: every worker publishes its `status.json` counters to
  `REPLAYLENS_TOPIC_WORKER_STATUS` (compacted, keyed by worker) for the API to serve.

`CompactedView` reads a compacted topic from its start, with no consumer group (every reader
sees every partition), into a dict of the latest value per key, and keeps following it.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pydantic import ValidationError

from replaylens.config.settings import Settings
from replaylens.schemas.profiles import SummaryProfile
from replaylens.streams.topics import create_missing
from replaylens.streams.consumers import stop_reader

log = logging.getLogger("replaylens.streams")

# A handful of small records: one partition keeps them in one order for every reader.
COMPACTED_PARTITIONS = 1
POLL_MS = 200

OnChange = Callable[[dict[str, Any]], Any]


async def ensure_compacted_topics(s: Settings, names: list[str]) -> None:
    """Create the compacted topics that do not exist yet (any reader or writer may call it)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap)
    await admin.start()
    try:
        await create_missing(admin, [NewTopic(n, COMPACTED_PARTITIONS, s.topic_replication,
                                              topic_configs={"cleanup.policy": "compact"}) for n in names])
    finally:
        await admin.close()


async def topic_partitions(bootstrap: str, names: list[str]) -> dict[str, list[int]]:
    """The partition numbers of each topic (missing topics: none), from the cluster."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    return {t["topic"]: sorted(p["partition"] for p in t["partitions"]) for t in described
            if t["error_code"] == 0}


def encode_profile(profile: SummaryProfile) -> bytes:
    return orjson.dumps(profile.model_dump(mode="json"))


def decode_profile(value: bytes) -> Optional[SummaryProfile]:
    """A profile from the topic, or None (logged) when a record is not one."""
    try:
        return SummaryProfile.model_validate_json(value)
    except ValidationError as exc:
        log.warning("ignoring an invalid profile record: %s", exc.errors()[:1])
        return None


class CompactedView:
    """The latest value per key of a compacted topic, kept current by a background task."""

    def __init__(self, bootstrap: str, topic: str, decode: Callable[[bytes], Any],
                 on_change: Optional[OnChange] = None) -> None:
        self.bootstrap, self.topic, self.decode = bootstrap, topic, decode
        self.on_change = on_change
        self.values: dict[str, Any] = {}
        self.caught_up = asyncio.Event()
        self._consumer: Optional[AIOKafkaConsumer] = None
        self._task: Optional[asyncio.Task] = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                          enable_auto_commit=False, auto_offset_reset="earliest")
        await self._consumer.start()
        partitions = (await topic_partitions(self.bootstrap, [self.topic])).get(self.topic) or [0]
        tps = [TopicPartition(self.topic, p) for p in partitions]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        ends = await self._consumer.end_offsets(tps)
        self._task = asyncio.create_task(self._run(ends), name=f"compacted-view-{self.topic}")

    async def _run(self, ends: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        if all(offset == 0 for offset in ends.values()):
            self.caught_up.set()
        while True:
            batches = await self._consumer.getmany(timeout_ms=POLL_MS)
            changed = False
            for records in batches.values():
                for rec in records:
                    changed |= self._apply(rec.key, rec.value)
            if not self.caught_up.is_set():
                positions = [await self._consumer.position(tp) for tp in ends]
                if all(pos >= end for pos, end in zip(positions, ends.values())):
                    self.caught_up.set()
                    changed = True
            if changed and self.caught_up.is_set() and self.on_change is not None:
                try:
                    outcome = self.on_change(dict(self.values))
                    if asyncio.iscoroutine(outcome):
                        await outcome
                except Exception:  # noqa: BLE001 - a bad callback must not stop following the topic
                    log.exception("applying %s changed failed", self.topic)

    def _apply(self, key: Optional[bytes], value: Optional[bytes]) -> bool:
        if key is None:
            return False
        name = key.decode("utf-8", "replace")
        if value is None:
            return self.values.pop(name, None) is not None
        decoded = self.decode(value)
        if decoded is None:
            return False
        self.values[name] = decoded
        return True

    async def stop(self) -> None:
        await stop_reader(self._task, self._consumer)


def merged_streaming(file_profiles: list[SummaryProfile], topic_profiles: dict[str, SummaryProfile]
                     ) -> list[SummaryProfile]:
    """The streaming profiles: files and the default, with topic ones added or replacing them."""
    by_id = {p.id: p for p in file_profiles}
    by_id.update(topic_profiles)
    return [p for p in by_id.values() if p.streaming]


class WorkerFeeds:
    """The worker's side of the API: keeps `sink.profiles` current from the profiles topic and
    publishes this worker's status.json counters every `worker_status_interval_s`."""

    def __init__(self, s: Settings, sink: Any, file_profiles: list[SummaryProfile],
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.settings, self.sink, self.file_profiles = s, sink, list(file_profiles)
        self.worker_id = f"{s.app_id}@{socket.gethostname()}:{os.getpid()}"
        self.profiles = CompactedView(s.kafka_bootstrap, s.topic_profiles, decode_profile, self._on_profiles)
        self._sleep = sleep
        self._producer: Optional[AIOKafkaProducer] = None
        self._status_task: Optional[asyncio.Task] = None

    def _on_profiles(self, topic_profiles: dict[str, SummaryProfile]) -> None:
        self.sink.profiles = merged_streaming(self.file_profiles, topic_profiles)
        log.info("streaming profiles now: %s", ", ".join(p.id for p in self.sink.profiles))

    async def start(self) -> None:
        s = self.settings
        await ensure_compacted_topics(s, [s.topic_profiles, s.topic_worker_status])
        await self.profiles.start()
        self._producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap)
        await self._producer.start()
        self._status_task = asyncio.create_task(self._publish_status(), name="worker-status")

    async def _publish_status(self) -> None:
        path = Path(self.settings.data_dir) / "status.json"
        while True:
            await self._sleep(self.settings.worker_status_interval_s)
            try:
                status = orjson.loads(path.read_bytes())
            except (OSError, ValueError):
                continue  # not written yet (first tick), or being replaced
            status["worker"] = self.worker_id
            assert self._producer is not None
            try:
                await self._producer.send(self.settings.topic_worker_status, key=self.worker_id.encode(),
                                          value=orjson.dumps(status))
            except Exception as exc:  # noqa: BLE001 - counters are best effort; the next tick retries
                log.warning("could not publish the worker status: %s", exc)

    async def stop(self) -> None:
        if self._status_task is not None:
            self._status_task.cancel()
            try:
                await self._status_task
            except asyncio.CancelledError:
                pass
        await self.profiles.stop()
        if self._producer is not None:
            await self._producer.stop()
