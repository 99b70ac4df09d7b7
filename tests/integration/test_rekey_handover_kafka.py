"""Re-keyed events left unread in the re-key topic when their partition changes hands.

Worker A forwards mis-keyed events of a session to the re-key topic; nobody reads them back
before A is killed: their re-key partition belongs to a stalled group member (a bare consumer
that never polls, as a worker hung in a long pause would). Worker B then takes over every
partition and reads a burst of other sessions whose event time is far past the session's end,
before it reaches the forwarded events in the re-key topic (they sit behind more than one fetch
of other forwarded events). B must not close the session before it has read the re-key topic
as far as it stood when B was assigned the partition: the session comes out whole, nothing late.
"""
from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from replaylens.streams.worker import expected_partition
from tests.fault_report import FaultReport, by_session
from tests.worker_process import TopicReader, WorkerProcess, create_topics, pipeline_env, topic

pytestmark = [pytest.mark.kafka, pytest.mark.fault]

PARTITIONS = 4
SETTINGS = dict(
    REPLAYLENS_TOPIC_PARTITIONS=PARTITIONS,
    REPLAYLENS_SESSION_GAP_MS=5_000, REPLAYLENS_SESSION_GRACE_MS=2_000,
    # Uncompressed, so the filler events really take fetch bytes in the re-key partition.
    REPLAYLENS_PRODUCER_COMPRESSION="none",
    # The group gives a killed worker's partitions away after this (the broker's minimum).
    REPLAYLENS_KAFKA_SESSION_TIMEOUT_MS=6_000, REPLAYLENS_KAFKA_HEARTBEAT_INTERVAL_MS=2_000,
)
# Filler sessions forwarded ahead of the session's events: more than three fetches' worth of
# the re-key partition (aiokafka's max_partition_fetch_bytes is 1 MiB), so B's first batches
# hold the burst and never the forwarded events of the session.
FILLERS = 80
FILLER_BYTES = 40_000
BURST_SESSIONS = 6  # more than REPLAYLENS_WATERMARK_MIN_SESSIONS (5): they move event time
WAIT_S = 60


def ids_on(partition: int, prefix: str, count: int) -> list[str]:
    """`count` session ids that Kafka's default partitioner puts on `partition`."""
    out, i = [], 0
    while len(out) < count:
        sid = f"{prefix}-{i}"
        if expected_partition(sid, PARTITIONS) == partition:
            out.append(sid)
        i += 1
    return out


def event(sid: str, n: int, ts: int, **extra) -> dict:
    return {"event_id": f"{sid}-e{n}", "session_id": sid, "timestamp": ts, "type": "click",
            "url": "https://shop.example.com/p", "target": {"selector": f"button#b{n}"}, **extra}


async def send(bootstrap: str, topic_name: str, partition: int, records: list[tuple[bytes, dict]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                max_request_size=4 * 1024 * 1024)
    await producer.start()
    try:
        futs = [await producer.send(topic_name, orjson.dumps(v), key=k, partition=partition) for k, v in records]
        await asyncio.gather(*futs)
    finally:
        await producer.stop()


async def until(condition, what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def read_to_end(bootstrap: str, topic_name: str) -> list[dict]:
    """Every record the topic holds now (to each partition's end offset at the call)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    out: list[dict] = []
    try:
        tps = [TopicPartition(topic_name, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        todo = {tp for tp in tps if ends[tp] > 0}
        while todo:
            for recs in (await consumer.getmany(*todo, timeout_ms=500)).values():
                out += [{"key": r.key, "value": orjson.loads(r.value)} for r in recs]
            todo = {tp for tp in todo if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return out


async def committed(bootstrap: str, group: str) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in offsets.items()}


async def test_events_forwarded_before_a_handover_join_their_session(kafka_bootstrap, tmp_path):
    env = pipeline_env(kafka_bootstrap, tmp_path, **SETTINGS)
    await create_topics(env)
    events_topic, rekeyed_topic = topic(env, "events"), topic(env, "rekeyed")
    group = f"{env['REPLAYLENS_APP_ID']}-sessionize"

    # A stalled member of the worker's group: it holds half the partitions and never reads them.
    stalled = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, client_id="zz-stalled",
                               enable_auto_commit=False, partition_assignment_strategy=(RangePartitionAssignor,),
                               session_timeout_ms=6_000, heartbeat_interval_ms=2_000)
    await stalled.start()
    stalled.subscribe([events_topic, rekeyed_topic])
    worker_a = worker_b = None
    try:
        await until(lambda: _true(bool(stalled.assignment())), "the stalled member's assignment")
        worker_a = WorkerProcess(env, tmp_path / "worker-a.log").start()
        await until(lambda: _true(len(stalled.assignment()) == PARTITIONS), "worker A joining the group",
                    timeout_s=WAIT_S)
        stalled_parts = {tp.partition for tp in stalled.assignment()}
        q = min(stalled_parts)  # the session's partition (of both topics): not A's
        p = min(set(range(PARTITIONS)) - stalled_parts)  # where its mis-keyed events arrive: A's

        now = int(time.time() * 1000)
        start = now - 60_000
        [session] = ids_on(q, "shopper", 1)
        keyed = [event(session, n, start + n * 1_000) for n in (0, 2, 4, 6)]
        miskeyed = [event(session, n, start + n * 1_000) for n in (1, 3, 5)]
        fillers = [event(sid, 0, start + 20_000, padding="x" * FILLER_BYTES)  # an unknown field, kept
                   for sid in ids_on(q, "filler", FILLERS)]

        # The session's own events on its partition (the stalled member's: unread for now).
        await send(kafka_bootstrap, events_topic, q, [(e["session_id"].encode(), e) for e in keyed])
        # Mis-keyed events on A's partition: A forwards them to the session's re-key partition.
        await send(kafka_bootstrap, events_topic, p, [(b"mis-keyed", e) for e in fillers + miskeyed])
        forwarded = len(fillers) + len(miskeyed)
        async with TopicReader(kafka_bootstrap, rekeyed_topic) as rekeyed:
            await rekeyed.until(lambda rs: len(rs) >= forwarded, timeout_s=WAIT_S, alive=worker_a.assert_alive)
        assert len(rekeyed.records) == forwarded and {r["partition"] for r in rekeyed.records} == {q}
        await until(lambda: _committed_at_least(kafka_bootstrap, group, TopicPartition(events_topic, p), forwarded),
                    "worker A committing the forwarded events")
        worker_a.kill()  # SIGKILL: its memory of what it forwarded is gone

        # A burst of other sessions on the session's partition, 50 s of event time past its end.
        burst_at = int(time.time() * 1000) - 3_000
        # (each ends with a session-end: it closes the grace after it, not the whole gap)
        burst = [event(sid, n, burst_at + n * 100, **({"type": "session-end"} if n == 2 else {}))
                 for sid in ids_on(q, "burst", BURST_SESSIONS) for n in range(3)]
        await send(kafka_bootstrap, events_topic, q, [(e["session_id"].encode(), e) for e in burst])
        await stalled.stop()  # leaves the group: B will be given every partition
        stalled = None

        expected = by_session(keyed + miskeyed + fillers + burst)
        worker_b = WorkerProcess(env, tmp_path / "worker-b.log").start()
        async with TopicReader(kafka_bootstrap, topic(env, "closed_sessions")) as closed:
            # Every session has closed at least once (a split session shows in the assertions).
            await closed.until(lambda rs: set(expected) <= {r["value"]["session_id"] for r in rs},
                               timeout_s=WAIT_S, alive=worker_b.assert_alive)
        dead_letters = await read_to_end(kafka_bootstrap, topic(env, "dead_letter"))
        worker_b.assert_alive()
    finally:
        if stalled is not None:
            await stalled.stop()
        for w in (worker_a, worker_b):
            if w is not None:
                w.stop()

    report = FaultReport("rekey-handover", messages_in=len(keyed) + forwarded + len(burst), expected=expected,
                         closed=closed.records, dead_letters=dead_letters)
    windows = [w for w in report.windows().values() if w["session_id"] == session]
    report.extra["session windows"] = [(w["window_id"], w["event_count"]) for w in windows]
    report.print()
    assert report.dead_letters_by_reason() == {}, "re-keyed events came back after their session closed"
    assert report.lost() == {}
    assert len(windows) == 1 and {e["event_id"] for e in windows[0]["events"]} == expected[session]
    assert [e["timestamp"] for e in windows[0]["events"]] == sorted(e["timestamp"] for e in keyed + miskeyed)
    assert report.duplicate_events() == {}


async def _true(value: bool) -> bool:
    return value


async def _committed_at_least(bootstrap: str, group: str, tp: TopicPartition, offset: int) -> bool:
    return (await committed(bootstrap, group)).get(tp, -1) >= offset
