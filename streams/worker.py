"""The Kafka worker's hot loops: our own aiokafka consumers inside the Faust app.

Faust keeps the app, its timers, the rrweb agent and the lifecycle (`streams/agents.py`); the two
loops here own their consumers and offsets, because Faust's per-message stream path was the
largest share of the worker's CPU (BENCHMARKS.md):

- `SessionizeLoop` (role `sessionize`) reads the events and re-key topics with `getmany`, runs
  every message through the stage (never raising: a message that fails becomes a dead letter),
  flushes once per batch, writes the flush (dead letters, re-keys, closed sessions with their
  comparisons, url deltas, then state), and commits the batch's offsets only after the broker
  acknowledged all of it. A crash in between re-delivers the batch: at-least-once, with equal
  window ids and idempotency keys for what is written twice. Sessions with events on their way
  through the re-key topic, and every session of a partition just assigned until its re-key
  backlog is read, are held open (`RekeyHold`).
- `SummarizeLoop` (role `summarize`) reads closed sessions. With the built-in summarizer only, it
  summarizes each `getmany` batch in one pass, sends the batch's summaries together and commits
  its offsets after their acks. With an LLM, it summarizes each session on its own with bounded
  concurrency, publishes each session's summaries as soon as they are ready and commits a
  partition only up to its lowest unfinished session.

Any output the broker refuses for its size is dead-lettered (`output-too-large`: an excerpt, the
size and a digest) and the loop goes on: no input can make the worker exit or crash-loop.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Container, Iterable, Optional

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import (CommitFailedError, IllegalStateError, KafkaError, MessageSizeTooLargeError,
                             RecordListTooLargeError, RecordTooLargeError)
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.partitioner import murmur2
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from replaylens.aggregates.deltas import encode_delta_records
from replaylens.config.privacy import DEFAULT_POLICY
from replaylens.config.settings import Settings
from replaylens.schemas.dead_letter import original_fields
from replaylens.sinks.llm_summarizer import SummarizerClosed
from replaylens.sinks.summarize import decode_for_builtin, encode_summary
from replaylens.streams.sessionizer import assemble_states
from replaylens.streams.stage import Flush, Origin, dead_letter, now_ms
from replaylens.streams.wiring import Core

log = logging.getLogger("replaylens.streams")

# Reading counts as healthy while a fetch response (even an empty one) came back this recently.
# The consumer long-polls every fetch_max_wait (0.5 s by default), so 5 s means several polls
# were missed: the broker is away, and event time must not move on the wall clock meanwhile.
READ_STALE_MS = 5_000
# A refused output's dead letter quotes at most this much of it (the rest is size + digest).
EXCERPT_BYTES = 4_096
# The summarize loop commits finished sessions at most this often: a commit is a broker round
# trip, and committing after every session made the loop wait on them (151 sessions/s).
SUMMARIZE_COMMIT_INTERVAL_S = 1.0
# The built-in summarize pass yields to the event loop after this many sessions (~50 ms at most):
# the consumer's heartbeats and prefetch, and a sessionizing role in the same process, go on.
SUMMARIZE_YIELD_EVERY = 64
# How long one poll of the state topic waits for records while resuming partitions.
STATE_READ_POLL_MS = 500
# After a retriable output failure (broker away), wait this long before writing the flush again.
RETRY_BACKOFF_S = 1.0
# Per-partition batch of the worker's producer. aiokafka's default (16 KiB) holds one or two closed
# sessions or a few summaries: every send then waited for a batch to drain (py-spy: asyncio.wait
# in MessageBatch.wait_drain). 256 KiB batches many records per request.
PRODUCER_BATCH_BYTES = 256 * 1024
# Session ids whose partition is remembered: murmur2 runs in Python (~1 µs); open sessions repeat.
EXPECTED_PARTITION_CACHE = 65_536
# Errors that retrying the same record can never fix: the record is too large for the topic.
TOO_LARGE = (MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError)
# RekeyHold: a session forwarded in the batch in progress, whose record has no offset yet.
UNACKED = -1


@lru_cache(maxsize=EXPECTED_PARTITION_CACHE)
def expected_partition(session_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2) gives this key."""
    return (murmur2(session_id.encode()) & 0x7FFFFFFF) % partitions


class ReadClock:
    """Wall-clock time that passes only while reading from the broker is healthy.

    The sessionizer lets quiet partitions' event time move on this clock. During a broker outage
    it stands still, so events sent on time during the outage are not late when they arrive."""

    def __init__(self, stale_after_ms: int = READ_STALE_MS) -> None:
        self.stale_after_ms = stale_after_ms
        self.value: Optional[int] = None
        self._last_wall: Optional[int] = None

    def tick(self, wall_ms: int, last_read_ms: Optional[int]) -> int:
        if self.value is None or self._last_wall is None:
            self.value = wall_ms
        elif last_read_ms is not None and wall_ms - last_read_ms <= self.stale_after_ms:
            self.value += max(0, wall_ms - self._last_wall)
        self._last_wall = wall_ms
        return self.value


# -- outputs -------------------------------------------------------------------------------------
def build_producer(s: Settings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=s.kafka_bootstrap, acks="all", linger_ms=s.producer_linger_ms,
        max_batch_size=min(PRODUCER_BATCH_BYTES, s.producer_max_request_size),
        compression_type=None if s.producer_compression == "none" else s.producer_compression,
        max_request_size=s.producer_max_request_size)


def too_large_dead_letter(topic: str, key: Optional[bytes], value: bytes, exc: BaseException,
                          session_id: Optional[str]) -> dict[str, Any]:
    return {
        "reason": "output-too-large",
        "error": f"{type(exc).__name__}: a {len(value):,}-byte record for {topic} was refused",
        "topic": topic, "partition": None, "offset": None,
        "key": key.decode("utf-8", "replace") if key else None, "session_id": session_id,
        "received_at": now_ms(), **original_fields(value, DEFAULT_POLICY, EXCERPT_BYTES),
    }


@dataclass
class Record:
    topic: str
    key: Optional[bytes]
    value: Optional[bytes]
    partition: Optional[int] = None
    ack: Any = None  # the broker's RecordMetadata (partition, offset) once acknowledged


class Outputs:
    """Sends records and waits for the broker's acknowledgement of all of them. A record the
    broker refuses for its size is replaced by a bounded dead letter; other failures raise
    (the caller writes the whole flush again: at-least-once)."""

    def __init__(self, producer: AIOKafkaProducer, dead_letter_topic: str, counters: Any) -> None:
        self.producer = producer
        self.dead_letter_topic = dead_letter_topic
        self.counters = counters

    async def send_all(self, records: list[Record]) -> None:
        pending: list[tuple[Record, asyncio.Future]] = []
        refused: list[tuple[Record, BaseException]] = []
        for r in records:
            try:
                fut = await self.producer.send(r.topic, value=r.value, key=r.key, partition=r.partition)
            except TOO_LARGE as exc:
                refused.append((r, exc))
                continue
            pending.append((r, fut))
        results = await asyncio.gather(*(f for _, f in pending), return_exceptions=True)
        for (r, _), result in zip(pending, results):
            if isinstance(result, TOO_LARGE):
                refused.append((r, result))
            elif isinstance(result, BaseException):
                raise result
            else:
                r.ack = result
        if refused:
            await self._dead_letter(refused)

    async def _dead_letter(self, refused: list[tuple[Record, BaseException]]) -> None:
        futs = []
        for r, exc in refused:
            self.counters.outputs_too_large += 1
            sid = r.key.decode("utf-8", "replace") if r.key else None
            log.warning("output of %s bytes to %s refused (%s): dead-lettered", len(r.value or b""),
                        r.topic, type(exc).__name__)
            dl = too_large_dead_letter(r.topic, r.key, r.value or b"", exc, sid)
            futs.append(await self.producer.send(self.dead_letter_topic, key=r.key, value=orjson.dumps(dl)))
        await asyncio.gather(*futs)


def flush_records(s: Settings, out: Flush) -> list[Record]:
    """A flush as records, in the order they must be acknowledged before the state changes."""
    records = [Record(s.topic_dead_letter, (d.get("session_id") or "").encode() or None, orjson.dumps(d))
               for d in out.dead_letters]
    records += [Record(s.topic_rekeyed, sid.encode(), text.encode()) for sid, text in out.rekeyed]
    records += [Record(s.topic_closed_sessions, c["session_id"].encode(), orjson.dumps(c)) for c in out.closed]
    records += [Record(s.topic_url_deltas, None, value) for value in encode_delta_records(out.deltas, s.max_record_bytes)]
    records += [Record(s.state_topic, key, value, p) for p, key, value in out.state]
    return records


def rekey_acks(s: Settings, records: list[Record]) -> list[tuple[str, int, int]]:
    """(session id, partition, offset) of the acknowledged records of the re-key topic."""
    return [(r.key.decode(), r.ack.partition, r.ack.offset) for r in records
            if r.topic == s.topic_rekeyed and r.ack is not None and r.key is not None]


async def write_until_acked(outputs: Outputs, records: list[Record], stopping: Callable[[], bool]) -> bool:
    """Write until the broker acknowledged everything (retrying what can be retried). False when
    the worker is stopping first: then nothing is committed and the input is read again."""
    while True:
        try:
            await outputs.send_all(records)
            return True
        except KafkaError as exc:
            log.warning("writing outputs failed (%s); retrying in %s s", type(exc).__name__, RETRY_BACKOFF_S)
            if stopping():
                return False
            await asyncio.sleep(RETRY_BACKOFF_S)


async def commit(consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
    """Commit; a commit lost to a rebalance only means the batch is read again (at-least-once)."""
    if not offsets:
        return
    try:
        await consumer.commit(offsets)
    except (CommitFailedError, IllegalStateError, KafkaError) as exc:
        log.warning("commit of %s partitions failed (%s); they will be read again", len(offsets),
                    type(exc).__name__)


def consumer_for(s: Settings, group: str, max_records: int) -> AIOKafkaConsumer:
    """A group consumer whose offsets we commit ourselves; the caller subscribes it (with its
    rebalance listener) after start. The range assignor keeps topics co-partitioned: partition p
    of the events topic and of the re-key topic always go to the same worker (aiokafka's default,
    round-robin, would split them as soon as the partitions do not divide evenly)."""
    return AIOKafkaConsumer(
        bootstrap_servers=s.kafka_bootstrap, group_id=group, enable_auto_commit=False,
        partition_assignment_strategy=(RangePartitionAssignor,),
        auto_offset_reset="earliest", session_timeout_ms=s.kafka_session_timeout_ms,
        heartbeat_interval_ms=s.kafka_heartbeat_interval_ms, max_poll_records=max_records)


# -- state topic -----------------------------------------------------------------------------------
async def read_compacted(bootstrap: str, topic: str, partitions: list[int]) -> dict[int, dict[bytes, Any]]:
    """The latest decoded value per key in these partitions of a compacted topic, each read to
    the end offset it had when we started (one consumer for all: a restart pays its start-up once).
    A tombstone removes its key."""
    tps = [TopicPartition(topic, p) for p in partitions]
    latest: dict[int, dict[bytes, Any]] = {p: {} for p in partitions}
    if not tps:
        return latest
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        todo = {tp for tp in tps if ends[tp] > 0}
        while todo:
            batch = await consumer.getmany(*todo, timeout_ms=STATE_READ_POLL_MS)
            for tp, records in batch.items():
                part = latest[tp.partition]
                for rec in records:
                    if rec.value is None:
                        part.pop(rec.key, None)
                    else:
                        part[rec.key] = orjson.loads(rec.value)
            todo = {tp for tp in todo if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return latest


async def read_state_partitions(bootstrap: str, topic: str, partitions: list[int]) -> dict[int, dict[str, dict[str, Any]]]:
    """The open state per session id in these partitions of the state topic (heads and pieces
    assembled: streams/sessionizer.py `assemble_states`)."""
    records = await read_compacted(bootstrap, topic, partitions)
    return {p: assemble_states(part) for p, part in records.items()}


# -- sessionize ------------------------------------------------------------------------------------
class RekeyHold:
    """What must not close yet because some of its events are on their way through the re-key
    topic (a burst of event time could otherwise close it first and make them late, or split it).

    The re-key topic is partitioned by session id like the events topic, and partition q of both
    belongs to one worker (`consumer_for`). Every wait is on reading re-key partition q far enough,
    never on the clock alone:

    - a session this worker forwarded, once the broker acknowledged the record at offset o of
      partition q: held until this worker has read q up to o + 1. A session whose forwarded events
      went to a partition of another worker cannot close here and is not held (it was, between the
      forward and its acknowledgement: one batch);
    - a newly assigned partition q (`assigned`): every session of it held until this worker has
      read q up to its end offset at assignment. Events that a previous owner, or another worker,
      forwarded before the assignment are there, and nobody here remembers them.

    A wait whose re-key partition has not been read any further for `timeout_ms` of read-clock time
    (which stands still while reading is unhealthy) is dropped with a warning: a safety valve for a
    partition whose end cannot be reached (records lost from the log), not a deadline on a backlog
    being read."""

    def __init__(self, timeout_ms: int) -> None:
        self.timeout_ms = timeout_ms
        self.sessions: dict[str, int] = {}  # session id -> re-key read position it waits for
        self.partitions: dict[int, int] = {}  # partition -> end offset at assignment (hold all)
        self._unacked: list[str] = []  # forwarded in the batch in progress
        self._waits: dict[int, deque] = {}  # partition -> (position, session id) in offset order
        self._read: dict[int, int] = {}  # partition -> re-key position read up to (next offset)
        self._moved_at: dict[int, int] = {}  # partition -> read clock when a wait began or it was read further

    def forwarded(self, session_id: str) -> None:
        """An event of this session goes to the re-key topic in the batch in progress."""
        self.sessions[session_id] = UNACKED
        self._unacked.append(session_id)

    def acknowledged(self, acks: Iterable[tuple[str, int, int]], owned: Container[int], clock_ms: int) -> None:
        """The batch's forwarded records were acknowledged at (session id, partition, offset).
        Those on `owned` partitions wait for their offset to be read; the others stop waiting."""
        for sid, partition, offset in acks:
            if partition not in owned or offset < self._read.get(partition, 0):
                continue
            waits = self._waits.setdefault(partition, deque())
            if not waits and partition not in self.partitions:
                self._moved_at[partition] = clock_ms
            waits.append((offset + 1, sid))
            self.sessions[sid] = offset + 1
        for sid in self._unacked:
            if self.sessions.get(sid) == UNACKED:
                del self.sessions[sid]
        self._unacked.clear()

    def assigned(self, partition: int, position: int, end: int, clock_ms: int) -> None:
        """Partition newly assigned, its re-key partition to be read from `position`; the topic
        ends at `end`: until that is read, every session of the partition waits."""
        self._read[partition] = position
        if end > position:
            self.partitions[partition] = end
            self._moved_at[partition] = clock_ms

    def read(self, partition: int, position: int, clock_ms: int) -> None:
        """The re-key partition was read (and its events added) up to `position` (next offset)."""
        if position <= self._read.get(partition, -1):
            return
        self._read[partition] = position
        self._moved_at[partition] = clock_ms
        end = self.partitions.get(partition)
        if end is not None and position >= end:
            del self.partitions[partition]
        waits = self._waits.get(partition)
        while waits and waits[0][0] <= position:
            self._release(*waits.popleft())

    def _release(self, position: int, sid: str) -> None:
        if self.sessions.get(sid) == position:  # (not forwarded again since)
            del self.sessions[sid]

    def revoked(self, partition: int) -> None:
        self._drop(partition)
        self._read.pop(partition, None)

    def _drop(self, partition: int) -> None:
        self.partitions.pop(partition, None)
        self._moved_at.pop(partition, None)
        for position, sid in self._waits.pop(partition, ()):
            self._release(position, sid)

    def expire(self, clock_ms: int) -> None:
        """Drop the waits of partitions not read any further for `timeout_ms` (see the class)."""
        for partition, moved_at in list(self._moved_at.items()):
            if clock_ms - moved_at <= self.timeout_ms:
                continue
            if partition in self.partitions or self._waits.get(partition):
                log.warning("re-key partition %s not read any further for %s ms: its sessions may close "
                            "before events still in the re-key topic", partition, clock_ms - moved_at)
                self._drop(partition)
            else:
                del self._moved_at[partition]


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, loop: "SessionizeLoop") -> None:
        self.loop = loop

    async def on_partitions_revoked(self, revoked: Any) -> None:
        async with self.loop.lock:  # the batch in progress finishes and commits first
            self.loop.forget({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        async with self.loop.lock:
            await self.loop.load({tp.partition for tp in assigned})


class SessionizeLoop:
    def __init__(self, core: Core, producer: AIOKafkaProducer) -> None:
        s = core.settings
        self.core, self.settings = core, s
        self.outputs = Outputs(producer, s.topic_dead_letter, core.counters)
        self.consumer = consumer_for(s, f"{s.app_id}-sessionize", max_records=s.batch_size)
        self.lock = asyncio.Lock()
        self.loaded: set[int] = set()
        self.hold = RekeyHold(s.rekey_hold_timeout_ms)
        self.clock = ReadClock()
        self.batches = 0
        self.last_batch_ms = 0.0
        self.positions: dict[TopicPartition, int] = {}  # next offset to commit (for /metrics lag)
        self.on_batch: Optional[Callable[[float], None]] = None  # seconds per batch (for /metrics)
        self._stopping = False

    # -- partitions -----------------------------------------------------------------------
    async def load(self, partitions: set[int]) -> None:
        """Resume newly assigned partitions' open sessions from the state topic, before any of
        their events are processed; hold their sessions until their re-key backlog is read."""
        new = sorted(partitions - self.loaded)
        if not new:
            return
        started = time.monotonic()
        # Both are broker round trips: the re-key offsets are looked up while the state is read.
        states, rekey = await asyncio.gather(
            read_state_partitions(self.settings.kafka_bootstrap, self.settings.state_topic, new),
            self._rekey_offsets(new))
        for p, part in states.items():
            sz = self.core.stage.sessionizer(p)
            for sid, state in part.items():
                sz.import_key(sid, state)
            sz.dirty.clear()
            self.loaded.add(p)
        self._hold_for_rekeyed(rekey)
        log.info("partitions %s: resumed %s open session ids in %.2f s", new,
                 sum(len(x) for x in states.values()), time.monotonic() - started)

    async def _rekey_offsets(self, partitions: list[int]) -> dict[int, tuple[int, int]]:
        """Per newly assigned partition, where reading its re-key partition starts (the committed
        offset, else the first: auto_offset_reset) and where that partition ends now."""
        consumer = self.consumer
        tps = [TopicPartition(self.settings.topic_rekeyed, p) for p in partitions]
        try:
            ends, firsts, committed = await asyncio.gather(
                consumer.end_offsets(tps), consumer.beginning_offsets(tps),
                asyncio.gather(*(consumer.committed(tp) for tp in tps)))
        except KafkaError as exc:
            log.warning("partitions %s: re-key topic offsets unavailable (%s): their sessions are not held "
                        "for events forwarded before this assignment", partitions, type(exc).__name__)
            return {}
        return {tp.partition: (firsts[tp] if done is None else max(done, firsts[tp]), ends[tp])
                for tp, done in zip(tps, committed)}

    def _hold_for_rekeyed(self, offsets: dict[int, tuple[int, int]]) -> None:
        """Hold every session of these newly assigned partitions until their re-key partitions
        are read as far as they reached at assignment: events forwarded there before (by a
        previous owner, or another worker) are remembered by no one here (RekeyHold)."""
        clock = self.clock.tick(now_ms(), self._last_read_ms())
        for p, (start, end) in offsets.items():
            self.hold.assigned(p, start, end, clock)
        held = [f"{p} (to offset {self.hold.partitions[p]})" for p in sorted(offsets) if p in self.hold.partitions]
        if held:
            log.info("re-key partitions %s: no session of theirs closes until they are read that far",
                     ", ".join(held))

    def forget(self, partitions: set[int]) -> None:
        for p in partitions:
            self.hold.revoked(p)
            self.loaded.discard(p)
            self.core.stage.partitions.pop(p, None)
        self.positions = {tp: n for tp, n in self.positions.items() if tp.partition not in partitions}

    def assigned(self) -> list[int]:
        return sorted(self.loaded)

    # -- the loop -------------------------------------------------------------------------
    async def run(self) -> None:
        await self.consumer.start()
        self.consumer.subscribe([self.settings.topic_events, self.settings.topic_rekeyed],
                                listener=_Rebalance(self))
        tick_ms = int(self.settings.tick_interval_s * 1000)
        while not self._stopping:
            batches = await self.consumer.getmany(timeout_ms=tick_ms, max_records=self.settings.batch_size)
            if self._stopping:
                break  # not processed, not committed: read again by the next owner
            async with self.lock:
                await self.process(batches)

    async def process(self, batches: dict[TopicPartition, list[Any]]) -> None:
        started = time.perf_counter()
        s, stage, hold = self.settings, self.core.stage, self.hold
        wall = now_ms()
        clock = self.clock.tick(wall, self._last_read_ms())
        events_topic, partitions = s.topic_events, s.topic_partitions
        offsets: dict[TopicPartition, int] = {}
        for tp, records in batches.items():
            p = tp.partition
            if p not in self.loaded:  # revoked meanwhile: the next owner reads these again
                continue
            from_events = tp.topic == events_topic
            for rec in records:
                key = rec.key
                origin = Origin(rec.topic, p, rec.offset, key)
                if from_events:
                    def keyed_right(sid: str, key: Optional[bytes] = key) -> bool:
                        if key is not None and key == sid.encode() and expected_partition(sid, partitions) == p:
                            return True
                        hold.forwarded(sid)
                        return False
                    stage.process(p, rec.value, origin, wall, clock, keyed_right=keyed_right)
                else:
                    stage.process(p, rec.value, origin, wall, clock, rekeyed=True)
            if records:
                offsets[tp] = records[-1].offset + 1
        for tp, position in offsets.items():
            if tp.topic == s.topic_rekeyed:
                hold.read(tp.partition, position, clock)
        hold.expire(clock)
        out = await self.core.flush(self.loaded, clock, wall, hold=hold.sessions, held=hold.partitions)
        if out or offsets:
            if out:
                records = flush_records(s, out)
                if not await write_until_acked(self.outputs, records, lambda: self._stopping):
                    return
                if out.rekeyed:
                    hold.acknowledged(rekey_acks(s, records), self.loaded, clock)
            await commit(self.consumer, offsets)
            self.positions.update(offsets)
        self.batches += 1
        seconds = time.perf_counter() - started
        self.last_batch_ms = seconds * 1000
        if self.on_batch is not None:
            self.on_batch(seconds)

    def reading_stale(self) -> bool:
        """No fetch response for READ_STALE_MS: event time stands still on the wall clock."""
        last = self._last_read_ms()
        return last is not None and now_ms() - last > READ_STALE_MS

    def _last_read_ms(self) -> Optional[int]:
        polls = [self.consumer.last_poll_timestamp(tp) for tp in self.consumer.assignment()]
        polls = [t for t in polls if t]
        return max(polls) if polls else None

    async def stop(self) -> None:
        self._stopping = True
        async with self.lock:  # the batch in progress finishes (writes acked, offsets committed)
            pass
        await self.consumer.stop()


# -- summarize -------------------------------------------------------------------------------------
class BatchedOutputs(Outputs):
    """`Outputs` that hand the producer whole batches: records with a known partition fill one
    aiokafka `BatchBuilder` per partition (a new one when it is full) and each batch gets one
    future, instead of a `send` coroutine and a future per record (CPU per 8.6 KB summary: 29 µs
    against 42, zstd included). The records and their acknowledgement are the same: a batch
    holds what the producer's own batches would (same size limit and compression), and a record
    larger than a request (refused by `send` before it is sent) goes alone through
    `Outputs.send_all`, as do records without a partition; a batch the broker refuses for its
    size (the topic's max.message.bytes) is sent again one record per batch, so only a record
    refused on its own is dead-lettered (`send` would put them in one batch again)."""

    def __init__(self, producer: AIOKafkaProducer, dead_letter_topic: str, counters: Any,
                 max_request_size: int) -> None:
        super().__init__(producer, dead_letter_topic, counters)
        self.max_request_size = max_request_size

    async def send_all(self, records: list[Record]) -> None:
        alone: list[Record] = []
        by_partition: dict[tuple[str, int], list[Record]] = {}
        size_of = DefaultRecordBatchBuilder.estimate_size_in_bytes
        for r in records:
            if r.partition is None or size_of(r.key, r.value, []) > self.max_request_size:
                alone.append(r)
            else:
                by_partition.setdefault((r.topic, r.partition), []).append(r)
        pending = await self._send_batches(by_partition)
        try:
            if alone:
                await super().send_all(alone)
        finally:  # (every batch's outcome is collected, whatever happened to the others)
            results = await asyncio.gather(*(fut for _, fut in pending), return_exceptions=True)
        refused: list[Record] = []
        for (members, _), result in zip(pending, results):
            if isinstance(result, TOO_LARGE):
                refused += members
            elif isinstance(result, BaseException):
                raise result
        if refused:
            await self._send_alone(refused)

    async def _send_alone(self, records: list[Record]) -> None:
        """Each record in a batch of its own (the producer's `send` would batch them together
        again): only a record the broker refuses on its own is dead-lettered."""
        pending = []
        for r in records:
            batch = self.producer.create_batch()
            batch.append(key=r.key, value=r.value, timestamp=None)
            pending.append((r, await self.producer.send_batch(batch, r.topic, partition=r.partition)))
        results = await asyncio.gather(*(fut for _, fut in pending), return_exceptions=True)
        refused: list[tuple[Record, BaseException]] = []
        for (r, _), result in zip(pending, results):
            if isinstance(result, TOO_LARGE):
                refused.append((r, result))
            elif isinstance(result, BaseException):
                raise result
        if refused:
            await self._dead_letter(refused)

    async def _send_batches(self, by_partition: dict[tuple[str, int], list[Record]]) -> list[tuple[list[Record], Any]]:
        producer = self.producer
        pending = []
        for (topic, partition), recs in by_partition.items():
            batch, members = producer.create_batch(), []
            for r in recs:
                if batch.append(key=r.key, value=r.value, timestamp=None) is None:  # full
                    pending.append((members, await producer.send_batch(batch, topic, partition=partition)))
                    batch, members = producer.create_batch(), []
                    batch.append(key=r.key, value=r.value, timestamp=None)  # (a batch takes its first record)
                members.append(r)
            pending.append((members, await producer.send_batch(batch, topic, partition=partition)))
        return pending


@dataclass
class _Pending:
    offset: int
    done: bool = False


@dataclass
class _PartitionProgress:
    """Offsets of one partition in read order; committable up to the first unfinished one."""

    pending: deque = field(default_factory=deque)

    def committable(self) -> Optional[int]:
        last = None
        while self.pending and self.pending[0].done:
            last = self.pending.popleft().offset
        return None if last is None else last + 1


class SummarizerClock:
    """The built-in summarizer's share of the worker's CPU, measured inside the worker (a
    benchmark subtracting a summarizer timed elsewhere, at another moment of a shared machine,
    mixes two loads). A CPU clock costs 1-3 µs a call, too much around each session: the
    synchronous stretches of a batch pass (up to SUMMARIZE_YIELD_EVERY sessions) are timed in the
    thread's CPU and wall time, each summarizer call in wall time only (~0.1 µs), and the
    summarizer's CPU is the stretches' CPU times its share of their wall time (a preemption falls
    on either alike)."""

    def __init__(self) -> None:
        self.stretch_cpu_s = self.stretch_wall_s = self.summarizer_wall_s = 0.0
        self._cpu = self._wall = 0.0

    def start(self) -> None:
        self._cpu, self._wall = time.thread_time(), time.perf_counter()

    def stop(self) -> None:
        self.stretch_wall_s += time.perf_counter() - self._wall
        self.stretch_cpu_s += time.thread_time() - self._cpu

    @property
    def summarizer_cpu_s(self) -> float:
        if self.stretch_wall_s <= 0:
            return 0.0
        return self.stretch_cpu_s * min(1.0, self.summarizer_wall_s / self.stretch_wall_s)


def _pydantic_json(summary: Any) -> bytes:
    """The serializer's bytes (model_dump_json() decodes them to str, encoded again after)."""
    return summary.__pydantic_serializer__.to_json(summary)


class SummarizeLoop:
    """Closed sessions in, summaries out. Two ways through, chosen once from the sink:

    - built-in only (no LLM profile, `SummarizerSink.builtin_only`): each `getmany` batch is
      summarized in one synchronous pass (no task per session), its summaries are sent together
      (a few compressed requests instead of one small one per session), and its offsets become
      committable once the broker acknowledged all of them (the next batch is summarized
      meanwhile);
    - with an LLM: each session is its own task, bounded by `summarize_concurrency`, so a slow call
      holds only its own session; a partition commits up to its lowest unfinished session.

    Either way a session whose summary raises becomes an internal-error dead letter and the rest
    go on; commits happen at most every SUMMARIZE_COMMIT_INTERVAL_S (and on revocation, stop)."""

    def __init__(self, core: Core, producer: AIOKafkaProducer) -> None:
        s = core.settings
        self.core, self.settings = core, s
        self.outputs = BatchedOutputs(producer, s.topic_dead_letter, core.counters, s.producer_max_request_size)
        self.consumer = consumer_for(s, f"{s.app_id}-summarize", max_records=s.summarize_concurrency)
        self.progress: dict[TopicPartition, _PartitionProgress] = {}  # task path: per-session progress
        self.acked: dict[TopicPartition, int] = {}  # batch path: next offset, all before it acked
        self.tasks: set[asyncio.Task] = set()
        self._slot_freed = asyncio.Event()  # (an Event, not asyncio.wait over all tasks: O(1) per session)
        self.lock = asyncio.Lock()  # held by a batch in progress: revocation and stop wait for it
        self._delivery: Optional[asyncio.Task] = None  # the last batch's sends, until acknowledged
        self.batch_in_flight = 0
        self.summarized = 0
        self.positions: dict[TopicPartition, int] = {}  # next offset to commit (for /metrics lag)
        self.same_partitions = False  # summaries go to their closed session's partition (see run)
        self.clock = SummarizerClock()
        self._stopping = False

    @property
    def in_flight(self) -> int:
        """Sessions being summarized (tasks, or the batch in progress)."""
        return len(self.tasks) + self.batch_in_flight

    async def run(self) -> None:
        await self.consumer.start()
        self.consumer.subscribe([self.settings.topic_closed_sessions], listener=_SummarizeRebalance(self))
        self.same_partitions = await self._same_partition_counts()
        if self.core.sink.builtin_only:
            await self._run_batches()
        else:
            await self._run_tasks()

    async def _same_partition_counts(self) -> bool:
        """Closed sessions are keyed by session id with Kafka's default partitioner, as summaries
        are: with equal partition counts (README "Topics": every pipeline topic has the same), a
        summary's partition is its closed session's, and the producer need not run its pure-Python
        murmur2 (10-20 µs) per summary. Otherwise the producer partitions them itself."""
        producer, s = self.outputs.producer, self.settings
        closed = await producer.partitions_for(s.topic_closed_sessions)
        summaries = await producer.partitions_for(s.topic_summaries)
        return len(closed) == len(summaries)

    # -- built-in only: one pass per batch ------------------------------------------------------
    async def _run_batches(self) -> None:
        tick_ms = int(self.settings.tick_interval_s * 1000)
        last_commit = time.monotonic()
        while not self._stopping:
            batches = await self.consumer.getmany(timeout_ms=tick_ms, max_records=self.settings.summarize_concurrency)
            if self._stopping:
                break  # not summarized, not committed: read again by the next owner
            if batches:
                async with self.lock:
                    await self.summarize_batch(batches)
            if time.monotonic() - last_commit >= SUMMARIZE_COMMIT_INTERVAL_S:
                await self.commit_done()
                last_commit = time.monotonic()

    async def summarize_batch(self, batches: dict[TopicPartition, list[Any]]) -> None:
        """Summarize every session of the batch, then hand all their summaries (and dead letters)
        to a delivery that marks the batch's offsets committable once the broker acknowledged all
        of them. The next batch is summarized while this one is acknowledged; deliveries finish in
        batch order (each waits for the one before)."""
        records: list[Record] = []
        offsets = {tp: recs[-1].offset + 1 for tp, recs in batches.items() if recs}
        count = sum(len(recs) for recs in batches.values())
        self.batch_in_flight += count
        clock = self.clock
        try:
            done = 0
            clock.start()
            for recs in batches.values():
                for rec in recs:
                    records += self._outputs_of(rec)
                    done += 1
                    if done % SUMMARIZE_YIELD_EVERY == 0:
                        clock.stop()
                        await asyncio.sleep(0)  # heartbeats, fetches and the other role run meanwhile
                        clock.start()
            clock.stop()
            await self.delivered()
        except BaseException:
            self.batch_in_flight -= count
            raise
        self._delivery = asyncio.create_task(self._deliver(records, offsets, count))

    async def _deliver(self, records: list[Record], offsets: dict[TopicPartition, int], count: int) -> None:
        try:
            if not await write_until_acked(self.outputs, records, lambda: self._stopping):
                return  # stopping before the acks: nothing committed, read again
        finally:
            self.batch_in_flight -= count
        self.summarized += count
        self.acked.update(offsets)

    async def delivered(self) -> None:
        """Wait for the last batch's acknowledgements (its offsets are then in `acked`)."""
        if self._delivery is not None:
            task, self._delivery = self._delivery, None
            await task

    def _outputs_of(self, rec: Any) -> list[Record]:
        """The summary records of one closed session, or its internal-error dead letter."""
        try:
            session = decode_for_builtin(rec.value)
            began = time.perf_counter()
            summaries = self.core.summarize_builtin(session)
            self.clock.summarizer_wall_s += time.perf_counter() - began
            return self._summary_records(summaries, rec, encode_summary)
        except Exception as exc:  # noqa: BLE001 - per-session isolation: counted and dead-lettered
            return [self._internal_error(rec, exc)]

    # -- with an LLM: one task per session ---------------------------------------------------------
    async def _run_tasks(self) -> None:
        tick_ms = int(self.settings.tick_interval_s * 1000)
        last_commit = time.monotonic()
        while not self._stopping:
            free = self.settings.summarize_concurrency - len(self.tasks)
            if free <= 0:  # every slot busy: read on when one frees (slow sessions hold only theirs)
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            batches = await self.consumer.getmany(timeout_ms=tick_ms, max_records=free)
            if self._stopping:
                break
            for tp, records in batches.items():
                progress = self.progress.setdefault(tp, _PartitionProgress())
                for rec in records:
                    item = _Pending(rec.offset)
                    progress.pending.append(item)
                    task = asyncio.create_task(self._one(rec, item))
                    self.tasks.add(task)
                    task.add_done_callback(self._finished)
            if time.monotonic() - last_commit >= SUMMARIZE_COMMIT_INTERVAL_S:
                await self.commit_done()
                last_commit = time.monotonic()

    def _finished(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        self._slot_freed.set()

    async def _one(self, rec: Any, item: _Pending) -> None:
        """Summarize one closed session and publish its summaries; marks it done when acked."""
        try:
            session = orjson.loads(rec.value)
            records = self._summary_records(await self.core.summarize(session), rec)
        except SummarizerClosed:
            return  # shutting down: not done, not committed; the next worker summarizes it
        except Exception as exc:  # noqa: BLE001 - per-session isolation: counted and dead-lettered
            records = [self._internal_error(rec, exc)]
        if await write_until_acked(self.outputs, records, lambda: self._stopping):
            self.summarized += 1
            item.done = True

    # -- both --------------------------------------------------------------------------------------
    def _summary_records(self, summaries: list[Any], rec: Any,
                         encode: Callable[[Any], bytes] = _pydantic_json) -> list[Record]:
        topic = self.settings.topic_summaries
        out = []
        for x in summaries:
            key = x.session_id.encode()
            partition = rec.partition if self.same_partitions and key == rec.key else None
            out.append(Record(topic, key, encode(x), partition))
        return out

    def _internal_error(self, rec: Any, exc: Exception) -> Record:
        self.core.counters.internal_errors += 1
        log.warning("internal error summarizing %s[%s]@%s: %s (dead-lettered)", rec.topic,
                    rec.partition, rec.offset, type(exc).__name__)
        origin = Origin(rec.topic, rec.partition, rec.offset, rec.key)
        dl = dead_letter(rec.value or b"", "internal-error", f"{type(exc).__name__} while summarizing",
                         origin, None, now_ms())
        return Record(self.settings.topic_dead_letter, rec.key, orjson.dumps(dl))

    async def commit_done(self) -> None:
        offsets = dict(self.acked)
        for tp, progress in self.progress.items():
            upto = progress.committable()
            if upto is not None:
                offsets[tp] = upto
        self.acked.clear()
        await commit(self.consumer, offsets)
        self.positions.update(offsets)

    async def _finish_batches(self) -> None:
        async with self.lock:
            await self.delivered()

    async def stop(self, timeout_s: float) -> None:
        """Stop reading; give the batch or the summaries in flight `timeout_s`, cancel the rest
        (left uncommitted for the next worker), commit what finished."""
        self._stopping = True
        try:  # the batch in progress finishes (its acks are awaited) before its offsets commit
            await asyncio.wait_for(self._finish_batches(), timeout_s)
        except asyncio.TimeoutError:
            log.warning("shutdown: the summary batch in progress did not finish in %s s", timeout_s)
        if self.tasks:
            _done, still = await asyncio.wait(set(self.tasks), timeout=timeout_s)
            for task in still:
                task.cancel()
            if still:
                await asyncio.gather(*still, return_exceptions=True)
                log.warning("shutdown: %s summaries cancelled, left for the next worker", len(still))
        await self.commit_done()
        await self.consumer.stop()


class _SummarizeRebalance(ConsumerRebalanceListener):
    def __init__(self, loop: SummarizeLoop) -> None:
        self.loop = loop

    async def on_partitions_revoked(self, revoked: Any) -> None:
        # The batch in progress finishes first; then commit what finished. Unfinished sessions of
        # these partitions go to the next owner (their summaries may then be written twice, with
        # equal idempotency keys).
        async with self.loop.lock:
            await self.loop.delivered()
            await self.loop.commit_done()
        for tp in revoked:
            self.loop.progress.pop(tp, None)
            self.loop.positions.pop(tp, None)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        return None


# -- status ----------------------------------------------------------------------------------------
def write_status(path: Path, status: dict[str, Any]) -> None:
    """The worker's counters as JSON (atomic replace, every tick)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps(status, option=orjson.OPT_INDENT_2))
    os.replace(tmp, path)

