"""The Faust application and the worker's runtime state (open sessions and their durable log).

Open sessions are kept durable in our own compacted state topic, one record per session id in
the partition of its events, written once per batch. We do not use a Faust Table for it:
faust-streaming's table recovery can wait forever on a changelog whose last offset is gone
(issues 176, 651 — reproduced here after a SIGKILL) and re-delivers events after recovery. A
newly assigned partition is instead read back directly, from its start to its end offset, before
any of its events are processed.

Agents live in `streams/agents.py`; this module only builds the app from Settings, so tests and
benchmarks can make one per run with their own topic names.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable, Optional

import faust
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import murmur2

from replaylens.config.settings import Settings
from replaylens.streams.sessionizer import assemble_states
from replaylens.streams.stage import SessionStage
from replaylens.streams.topics import BATCH_OVERHEAD_BYTES

log = logging.getLogger("replaylens.streams")

IN_FLIGHT_TIMEOUT_MS = 30_000


def build_app(settings: Settings, **overrides: Any) -> faust.App:
    conf: dict[str, Any] = dict(
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        # Recovery and first start read from the beginning: with "latest", Faust can hang in
        # recovery when segments are deleted meanwhile (faust-streaming issue 651).
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        datadir=str(settings.data_dir / "faust"),
        broker_commit_interval=1.0,
        # Sizes (README 'Limits'): every record is at most max_record_bytes, so one request
        # carries it with its batch headers; the topics' max.message.bytes match.
        producer_max_request_size=settings.max_record_bytes + BATCH_OVERHEAD_BYTES,
        producer_compression_type=None if settings.producer_compression == "none" else settings.producer_compression,
    )
    conf.update(overrides)
    return faust.App(settings.app_id, **conf)


@lru_cache(maxsize=65536)
def expected_partition(session_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2) gives this key."""
    return (murmur2(session_id.encode()) & 0x7FFFFFFF) % partitions


@dataclass
class Runtime:
    """One worker's state around the pure stage: which partitions are loaded, and a lock that
    keeps the batch agent and the idle-session timer from interleaving their flushes."""

    settings: Settings
    app: faust.App
    stage: SessionStage
    topics: dict[str, Any]
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    loaded: set[int] = field(default_factory=set)
    # Session ids with events sent through the re-key topic that have not come back yet:
    # their sessions must not close before those events arrive (a burst of event time could
    # otherwise close them first and make the re-keyed events late).
    in_flight: dict[str, list[int]] = field(default_factory=dict)  # sid -> [count, last wall ms]
    # After an assignment, events a previous owner forwarded may still sit in the re-key topic
    # (their source offsets are committed; in_flight above died with that worker). No session of
    # the partition closes until this worker has read the re-key partition up to the end offset
    # it had at assignment, or IN_FLIGHT_TIMEOUT_MS has passed (ops, issue 9: a SIGTERM test lost
    # re-keyed events as "late" without this).
    rekey_barrier: dict[int, tuple[int, int]] = field(default_factory=dict)  # partition -> (end offset, wall deadline)
    rekey_read: dict[int, int] = field(default_factory=dict)  # partition -> next re-key offset read

    def read_rekeyed(self, partition: int, offset: int) -> None:
        self.rekey_read[partition] = max(self.rekey_read.get(partition, 0), offset + 1)

    def closable(self, partitions: Iterable[int], wall_ms: int) -> list[int]:
        """The partitions whose sessions may close now (see rekey_barrier)."""
        out = []
        for p in partitions:
            barrier = self.rekey_barrier.get(p)
            if barrier is not None:
                end, deadline = barrier
                if self.rekey_read.get(p, 0) < end and wall_ms < deadline:
                    continue
                del self.rekey_barrier[p]
            out.append(p)
        return out

    async def set_rekey_barrier(self, partition: int, wall_ms: int) -> None:
        from faust.types import TP
        end = await partition_end_offset(self.settings.kafka_bootstrap, self.settings.topic_rekeyed, partition)
        try:  # where the group stands on it (Faust seeks to the committed offsets on assignment)
            committed = self.app.consumer._committed_offset.get(TP(self.settings.topic_rekeyed, partition))
        except Exception:  # noqa: BLE001 - no consumer yet: assume nothing was read
            committed = None
        if end > max(committed or 0, self.rekey_read.get(partition, 0)):
            self.rekey_barrier[partition] = (end, wall_ms + IN_FLIGHT_TIMEOUT_MS)

    def forwarded(self, session_id: str, wall_ms: int) -> None:
        entry = self.in_flight.setdefault(session_id, [0, wall_ms])
        entry[0] += 1
        entry[1] = wall_ms

    def returned(self, session_id: str) -> None:
        entry = self.in_flight.get(session_id)
        if entry is not None:
            entry[0] -= 1
            if entry[0] <= 0:
                del self.in_flight[session_id]

    def holding(self, wall_ms: int) -> dict[str, list[int]]:
        """In-flight ids, forgetting ones whose events went to another worker's partition."""
        expired = [sid for sid, (_n, at) in self.in_flight.items() if wall_ms - at > IN_FLIGHT_TIMEOUT_MS]
        for sid in expired:
            del self.in_flight[sid]
        return self.in_flight

    def status(self, assigned: list[int]) -> dict[str, Any]:
        materializer = getattr(self, "materializer", None)
        return {
            "app_id": self.settings.app_id, "written_at": int(time.time() * 1000),
            "assigned_partitions": assigned, "counters": self.stage.counters.as_dict(),
            "open_sessions": self.stage.open_sessions(), "buffered_events": self.stage.buffered_events(),
            "url_deltas_applied": materializer.applied if materializer else None,
        }

    def write_status(self, assigned: list[int]) -> None:
        """The worker's counters as JSON in data_dir/status.json (atomic replace, every tick)."""
        path = Path(self.settings.data_dir) / "status.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(self.status(assigned), option=orjson.OPT_INDENT_2))
        os.replace(tmp, path)

    def keyed_right(self, session_id: str, key: Optional[bytes], partition: int) -> bool:
        return key is not None and key == session_id.encode() and \
            partition == expected_partition(session_id, self.settings.topic_partitions)

    async def ensure_loaded(self, partition: int) -> None:
        """Resume a partition's open sessions from the state topic, once per assignment."""
        if partition in self.loaded:
            return
        states = await read_state_partition(self.settings.kafka_bootstrap, self.settings.state_topic,
                                            partition)
        sz = self.stage.sessionizer(partition)
        for sid, state in states.items():
            sz.import_key(sid, state)
        sz.dirty.clear()
        await self.set_rekey_barrier(partition, int(time.time() * 1000))
        self.loaded.add(partition)
        if states:
            log.info("partition %s: resumed %s open session ids", partition, len(states))

    def forget(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self.loaded.discard(p)
            self.stage.partitions.pop(p, None)
            self.rekey_barrier.pop(p, None)
            self.rekey_read.pop(p, None)

    async def flush(self, partitions: Iterable[int], wall_ms: int) -> list[dict[str, Any]]:
        """Publish what the stage produced, then persist state: closed sessions are on their
        topic (acknowledged) before their state is removed from the state topic, so a crash between the two
        re-emits a session (same window_id) rather than losing it."""
        out = self.stage.out
        partitions = list(partitions)
        pending = []
        for dl in out.dead_letters:
            pending.append(await self.topics["dead_letter"].send(
                key=(dl.get("session_id") or "").encode() or None, value=orjson.dumps(dl)))
        for sid, text in out.rekeyed:
            pending.append(await self.topics["rekeyed"].send(key=sid.encode(), value=text.encode()))
        self.stage.counters.rekeyed += len(out.rekeyed)
        closed = self.stage.close_ready(self.closable(partitions, wall_ms), wall_ms, hold=self.holding(wall_ms))
        for session in closed:
            pending.append(await self.topics["closed"].send(
                key=session["session_id"].encode(), value=orjson.dumps(session)))
        if pending:
            await asyncio.gather(*pending)
        out.dead_letters.clear()
        out.rekeyed.clear()
        self.persist(partitions)
        return closed

    def persist(self, partitions: Iterable[int]) -> None:
        """The state records of each changed session id (appended pieces and a head, or
        tombstones when nothing is open), in the partition of its events. Faust flushes the
        producer before it commits source offsets."""
        state_topic = self.topics["state"]
        piece_bytes = self.settings.state_piece_max_bytes
        for p in partitions:
            sz = self.stage.partitions.get(p)
            if sz is None:
                continue
            for key, value in sz.export_dirty(piece_bytes):
                state_topic.send_soon(key=key, partition=p, value=value)


async def partition_end_offset(bootstrap: str, topic: str, partition: int) -> int:
    tp = TopicPartition(topic, partition)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        return (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.stop()


async def read_state_partition(bootstrap: str, topic: str, partition: int) -> dict[str, dict[str, Any]]:
    """The latest state per session id in one partition of the state topic (read to its end)."""
    tp = TopicPartition(topic, partition)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    records: dict[bytes, Any] = {}
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=500)
            for rec in batch.get(tp, ()):
                if rec.value is None:
                    records.pop(rec.key, None)
                else:
                    records[rec.key] = orjson.loads(rec.value)
    finally:
        await consumer.stop()
    return assemble_states(records)
