"""The re-key hold: sessions wait for their events on the way through the re-key topic, and a
newly assigned partition waits for the re-key backlog it had at assignment (streams/worker.py
RekeyHold). Pure logic first, then the stage's `held` partitions, then the sessionize loop's
whole batch path in-process (a fake consumer and producer; the broker test is
tests/integration/test_rekey_handover_kafka.py)."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import orjson

from replaylens.config.settings import Settings
from replaylens.streams.stage import Origin, SessionStage, now_ms
from replaylens.streams.worker import RekeyHold, SessionizeLoop, expected_partition

TIMEOUT_MS = 30_000
OWNED = {0, 1, 2, 3}
LOOP_GRACE_MS = 100


# -- RekeyHold -------------------------------------------------------------------------------------
def test_a_forwarded_session_waits_until_its_record_is_read_back():
    hold = RekeyHold(TIMEOUT_MS)
    hold.forwarded("s1")
    assert "s1" in hold.sessions  # held already in the flush that forwards it (no offset yet)
    hold.acknowledged([("s1", 2, 40)], OWNED, clock_ms=0)
    assert "s1" in hold.sessions
    hold.read(2, 40, clock_ms=1)  # read up to offset 39: its record (40) not yet
    assert "s1" in hold.sessions
    hold.read(2, 41, clock_ms=2)
    assert "s1" not in hold.sessions


def test_a_session_forwarded_to_another_workers_partition_is_not_held_after_the_ack():
    hold = RekeyHold(TIMEOUT_MS)
    hold.forwarded("elsewhere")
    hold.forwarded("here")
    hold.acknowledged([("elsewhere", 5, 7), ("here", 1, 3)], owned={0, 1}, clock_ms=0)
    assert set(hold.sessions) == {"here"}  # the other one cannot close here: nothing to hold


def test_reading_an_earlier_forward_back_does_not_release_a_later_one():
    hold = RekeyHold(TIMEOUT_MS)
    hold.forwarded("s1")
    hold.acknowledged([("s1", 0, 10)], OWNED, 0)
    hold.forwarded("s1")  # forwarded again in the next batch: not yet acknowledged
    hold.read(0, 11, 1)  # the first record comes back
    assert "s1" in hold.sessions
    hold.acknowledged([("s1", 0, 12)], OWNED, 2)
    hold.read(0, 12, 3)
    assert "s1" in hold.sessions
    hold.read(0, 13, 4)
    assert not hold.sessions


def test_a_newly_assigned_partition_waits_for_the_rekey_backlog_it_had_at_assignment():
    hold = RekeyHold(TIMEOUT_MS)
    hold.assigned(2, position=100, end=130, clock_ms=0)
    hold.assigned(3, position=50, end=50, clock_ms=0)  # nothing unread: no wait
    assert 2 in hold.partitions and 3 not in hold.partitions
    hold.read(2, 120, 1)
    assert 2 in hold.partitions
    hold.read(2, 130, 2)
    assert not hold.partitions


def test_a_backlog_being_read_is_waited_for_past_the_timeout_but_a_stuck_partition_is_not():
    hold = RekeyHold(TIMEOUT_MS)
    hold.assigned(0, position=0, end=1_000_000, clock_ms=0)  # a large backlog, read steadily
    hold.assigned(1, position=0, end=10, clock_ms=0)  # its end can never be reached (say, truncated)
    for t in range(1, 10):
        clock = t * TIMEOUT_MS // 2
        hold.read(0, t * 1_000, clock)
        hold.expire(clock)
    assert set(hold.partitions) == {0}  # 4.5 timeouts in: the one making progress still waits
    hold.forwarded("s1")
    hold.acknowledged([("s1", 0, 2_000_000)], OWNED, clock)
    hold.expire(clock + TIMEOUT_MS + 1)  # partition 0 stalls as well
    assert not hold.partitions and not hold.sessions


def test_the_read_clock_standing_still_expires_nothing():
    hold = RekeyHold(TIMEOUT_MS)
    hold.assigned(0, position=0, end=5, clock_ms=1_000)
    hold.expire(1_000)  # (the worker's ReadClock does not move while the broker is away)
    hold.expire(1_000 + TIMEOUT_MS)
    assert 0 in hold.partitions


def test_a_revoked_partition_stops_holding_its_sessions():
    hold = RekeyHold(TIMEOUT_MS)
    hold.assigned(2, position=0, end=9, clock_ms=0)
    hold.forwarded("s1")
    hold.acknowledged([("s1", 2, 4)], OWNED, 0)
    hold.revoked(2)
    assert not hold.partitions and not hold.sessions


# -- the stage: held partitions ----------------------------------------------------------------------
SETTINGS = dict(session_gap_ms=5_000, session_grace_ms=2_000, topic_partitions=4)
T0 = 1_700_000_000_000


def ev(sid: str, n: int, ts: int) -> bytes:
    return orjson.dumps({"event_id": f"{sid}-{n}", "session_id": sid, "timestamp": ts, "type": "click",
                         "url": "https://shop.example.com/p"})


def burst(partition: int, at: int) -> list[bytes]:
    """Six sessions on `partition` whose events move its event time to `at`."""
    sids = [f"b{i}" for i in range(200) if expected_partition(f"b{i}", 4) == partition][:6]
    return [ev(sid, 0, at) for sid in sids]


def session_missing_its_rekeyed_event() -> tuple[SessionStage, int]:
    """Session "s" on partition 0 with events 0, 2 and 4 (1 is on its way through the re-key
    topic), and a burst that moves the partition's event time past its end; and the wall time."""
    stage = SessionStage.from_settings(Settings(**SETTINGS))
    wall = T0 + 120_000
    for n in (0, 2, 4):
        stage.process(0, ev("s", n, T0 + n * 1_000), Origin("events", 0, n), wall)
    for i, raw in enumerate(burst(0, T0 + 60_000)):
        stage.process(0, raw, Origin("events", 0, 10 + i), wall)
    return stage, wall


def test_a_held_partition_closes_nothing_yet_still_exports_its_state():
    stage, wall = session_missing_its_rekeyed_event()
    out = stage.flush([0], clock_ms=wall, held={0})
    assert out.closed == [] and {key for _p, key, _v in out.state}  # state still written
    stage.process(0, ev("s", 1, T0 + 1_000), Origin("rekeyed", 0, 0), wall, rekeyed=True)
    # (an event behind event time keeps its session open SESSION_GRACE_MS of wall time more)
    out = stage.flush([0], clock_ms=wall + SETTINGS["session_grace_ms"] + 1)
    [whole] = [c for c in out.closed if c["session_id"] == "s"]
    assert [e["event_id"] for e in whole["events"]] == ["s-0", "s-1", "s-2", "s-4"]
    assert stage.counters.late == 0


def test_without_the_hold_the_same_events_split_the_session():
    """The case the hold exists for: the re-keyed event comes back after its session closed."""
    stage, wall = session_missing_its_rekeyed_event()
    first = stage.flush([0], clock_ms=wall)
    stage.process(0, ev("s", 1, T0 + 1_000), Origin("rekeyed", 0, 0), wall, rekeyed=True)
    second = stage.flush([0], clock_ms=wall, close_all=True)
    parts = [c for c in first.closed + second.closed if c["session_id"] == "s"]
    assert len(parts) == 2


# -- the sessionize loop, in-process -----------------------------------------------------------------
class _Producer:
    """Acknowledges every record at once with the partition Kafka's partitioner would pick and
    the next offset of that partition."""

    def __init__(self) -> None:
        self.next: dict[tuple[str, int], int] = {}
        self.sent: list[tuple[str, int, bytes]] = []

    async def send(self, topic, value=None, key=None, partition=None):
        if partition is None:
            partition = expected_partition(key.decode(), 4) if key else 0
        offset = self.next.get((topic, partition), 0)
        self.next[(topic, partition)] = offset + 1
        self.sent.append((topic, partition, value))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(SimpleNamespace(topic=topic, partition=partition, offset=offset))
        return fut


class _Consumer:
    """Reading is healthy (a fetch just came back), so the loop's read clock follows the wall."""

    def __init__(self) -> None:
        self.commits: list[dict] = []

    def assignment(self):
        from aiokafka import TopicPartition

        return {TopicPartition("events", 0)}

    def last_poll_timestamp(self, _tp):
        return now_ms()

    async def commit(self, offsets):
        self.commits.append(dict(offsets))


def _loop(tmp_path) -> tuple[SessionizeLoop, _Producer]:
    from replaylens.streams.wiring import build_core

    s = Settings(**{**SETTINGS, "session_grace_ms": LOOP_GRACE_MS}, duckdb_path=tmp_path / "a.duckdb", data_dir=tmp_path, topic_events="events",
                 topic_rekeyed="rekeyed", topic_closed_sessions="closed")
    producer = _Producer()
    loop = SessionizeLoop(build_core(s), producer)
    loop.consumer = _Consumer()
    loop.loaded = set(OWNED)
    return loop, producer


def _records(topic: str, partition: int, values: list[bytes], key=None, first_offset: int = 0):
    from aiokafka import TopicPartition

    recs = [SimpleNamespace(topic=topic, partition=partition, offset=first_offset + i, value=v,
                            key=key(v) if callable(key) else key) for i, v in enumerate(values)]
    return {TopicPartition(topic, partition): recs}


def _closed(producer: _Producer, sid: str) -> list[dict]:
    return [orjson.loads(v) for t, _p, v in producer.sent if t == "closed" and orjson.loads(v)["session_id"] == sid]


async def _after_the_grace(loop: SessionizeLoop) -> None:
    """A re-keyed event behind event time keeps its session open the grace of wall time more."""
    await asyncio.sleep(LOOP_GRACE_MS * 2 / 1000)
    await loop.process({})


def _sid_key(value: bytes) -> bytes:
    return orjson.loads(value)["session_id"].encode()


async def test_the_loop_holds_a_newly_assigned_partition_until_its_rekey_backlog_is_read(tmp_path):
    loop, producer = _loop(tmp_path)
    try:
        [sid] = [f"s{i}" for i in range(100) if expected_partition(f"s{i}", 4) == 2][:1]
        clock = loop.clock.tick(now_ms(), None)  # (the read clock the loop goes on with)
        loop.hold.assigned(2, position=0, end=1, clock_ms=clock)  # what load() finds: one record unread
        keyed = [ev(sid, n, T0 + n * 1_000) for n in (0, 2)]
        await loop.process(_records("events", 2, keyed + burst(2, T0 + 60_000), key=_sid_key))
        assert _closed(producer, sid) == []  # event time is far past it, but the partition waits
        await loop.process(_records("rekeyed", 2, [ev(sid, 1, T0 + 1_000)], key=sid.encode()))
        await _after_the_grace(loop)
        [whole] = _closed(producer, sid)
        assert [e["event_id"] for e in whole["events"]] == [f"{sid}-0", f"{sid}-1", f"{sid}-2"]
        assert loop.core.counters.late == 0 and not loop.hold.partitions
    finally:
        await loop.core.aclose()


async def test_the_loop_holds_a_session_it_forwarded_until_it_reads_the_record_back(tmp_path):
    loop, producer = _loop(tmp_path)
    try:
        [sid] = [f"s{i}" for i in range(100) if expected_partition(f"s{i}", 4) == 2][:1]
        keyed = [ev(sid, n, T0 + n * 1_000) for n in (0, 2)]
        await loop.process(_records("events", 2, keyed, key=_sid_key))
        await loop.process(_records("events", 0, [ev(sid, 1, T0 + 1_000)], key=b"mis-keyed"))
        [(topic, partition, forwarded)] = [x for x in producer.sent if x[0] == "rekeyed"]
        assert partition == 2 and sid in loop.hold.sessions
        await loop.process(_records("events", 2, burst(2, T0 + 60_000), key=_sid_key, first_offset=2))
        assert _closed(producer, sid) == []  # its forwarded event is not back yet
        await loop.process(_records("rekeyed", 2, [forwarded], key=sid.encode()))
        await _after_the_grace(loop)
        [whole] = _closed(producer, sid)
        assert len(whole["events"]) == 3 and loop.core.counters.late == 0 and not loop.hold.sessions
        committed = {tp.topic + str(tp.partition): n for c in loop.consumer.commits for tp, n in c.items()}
        assert committed == {"events2": 8, "events0": 1, "rekeyed2": 1}
    finally:
        await loop.core.aclose()


def test_a_held_partition_still_hands_out_sessions_split_by_a_limit():
    stage = SessionStage.from_settings(Settings(**SETTINGS, session_max_events=3))
    wall = T0 + 120_000
    for n in range(4):
        stage.process(0, ev("long", n, T0 + n * 100), Origin("events", 0, n), wall)
    out = stage.flush([0], clock_ms=wall, held={0})
    assert [(c["part"], c["close_reason"], c["event_count"]) for c in out.closed] == [(1, "max-events", 3)]
