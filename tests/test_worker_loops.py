"""Pure parts of the worker's loops: the read clock, the summarize commit rule, the url-delta records."""
from __future__ import annotations

from replaylens.streams.worker import ReadClock, _PartitionProgress, _Pending, too_large_dead_letter


def test_read_clock_stands_still_while_reading_is_unhealthy():
    clock = ReadClock(stale_after_ms=5_000)
    assert clock.tick(1_000, 1_000) == 1_000
    assert clock.tick(2_000, 2_000) == 2_000  # healthy: time passes
    assert clock.tick(9_000, 2_500) == 2_000  # last read 6.5 s ago: the broker is away
    assert clock.tick(60_000, 2_500) == 2_000  # still away: event time must not move
    assert clock.tick(61_000, 61_000) == 3_000  # reading again: only the healthy second counts
    assert clock.tick(62_000, None) == 3_000  # nothing assigned or read yet: no advance


def test_summaries_commit_only_up_to_the_first_unfinished_session():
    progress = _PartitionProgress()
    items = [_Pending(offset) for offset in (10, 11, 12, 13)]
    progress.pending.extend(items)
    assert progress.committable() is None
    items[1].done = items[2].done = True  # 11 and 12 finished, 10 (a slow LLM call) has not
    assert progress.committable() is None
    items[0].done = True
    assert progress.committable() == 13  # 10, 11, 12 done: commit up to 13 (13 still running)
    items[3].done = True
    assert progress.committable() == 14


def test_a_refused_output_dead_letter_is_bounded_with_size_and_digest():
    value = b"x" * 3_000_000
    dl = too_large_dead_letter("closed", b"s1", value, ValueError("too large"), "s1")
    assert dl["reason"] == "output-too-large" and dl["original_bytes"] == 3_000_000 and len(dl["original_sha256"]) == 64
    assert len(dl["original"]) < 10_000 and dl["topic"] == "closed" and dl["session_id"] == "s1"


async def test_the_sessionize_consumer_keeps_events_and_rekeys_co_partitioned():
    from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata

    from replaylens.config.settings import Settings
    from replaylens.streams.worker import consumer_for

    consumer = consumer_for(Settings(), "g", max_records=10)
    [assignor] = consumer._partition_assignment_strategy

    class Cluster:
        def partitions_for_topic(self, _topic):
            return {0, 1, 2, 3}

    members = {f"m{i}": ConsumerProtocolMemberMetadata(0, ["events", "rekeyed"], b"") for i in range(3)}
    for assignment in assignor.assign(Cluster(), members).values():
        by_topic = dict(assignment.assignment)
        assert by_topic["events"] == by_topic["rekeyed"]  # partition p of both: the same worker


def test_a_flush_publishes_its_url_deltas_in_batches_that_every_materializer_reads(tmp_path):
    from types import SimpleNamespace

    import orjson

    from replaylens.aggregates.deltas import UrlDelta
    from replaylens.aggregates.store import AggregateStore
    from replaylens.config.settings import Settings
    from replaylens.streams.stage import Flush
    from replaylens.streams.url_deltas import DeltaMaterializer
    from replaylens.streams.worker import flush_records

    s = Settings()
    deltas = [UrlDelta(f"d{i}", 0, f"https://s/{i % 7}", visits=1, vitals={"lcp": [100.0 + i]}) for i in range(1_200)]
    records = [r for r in flush_records(s, Flush(deltas=deltas)) if r.topic == s.topic_url_deltas]
    assert len(records) == 3 and all(r.key is None and len(r.value) <= s.max_record_bytes for r in records)
    old_format = UrlDelta("old", 0, "https://s/old", visits=2).to_dict()  # one delta per record, as before
    values = [r.value for r in records] + [orjson.dumps(old_format), b'{"v": 2, "deltas": [{}]}']
    store = AggregateStore(tmp_path / "a.duckdb")
    try:
        materializer = DeltaMaterializer("unused:9092", s.topic_url_deltas, store)
        read = materializer._decoded_all(SimpleNamespace(value=v, topic="t", partition=0, offset=n)
                                         for n, v in enumerate(values))
        assert materializer.skipped == 1  # the malformed record, counted and logged, not fatal
        assert read[:len(deltas)] == deltas and read[-1].delta_id == "old"
        assert store.apply(read) == len(deltas) + 1 and store.apply(read) == 0  # idempotent by delta id
        assert store.url_stats(None, 0)["https://s/old"].visits == 2
    finally:
        store.close()


class _AckingProducer:
    """Acknowledges every record (sent alone or in a batch) at once and keeps them, in send
    order; its batches hold the records aiokafka's `BatchBuilder` takes (up to `batch_bytes`)."""

    def __init__(self, batch_bytes: int = 16 * 1024) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.partitions: list = []
        self.batch_bytes = batch_bytes
        self.batches: list[int] = []  # records per batch sent

    async def send(self, topic, value=None, key=None, partition=None):
        self.sent.append((topic, key, value))
        self.partitions.append(partition)
        return self._acked()

    def create_batch(self):
        from aiokafka.producer.message_accumulator import BatchBuilder

        return BatchBuilder(self.batch_bytes, 0)  # (no compression)

    async def send_batch(self, batch, topic, *, partition):
        from aiokafka.record.default_records import DefaultRecordBatch

        records = list(DefaultRecordBatch(batch._build()))
        self.sent += [(topic, r.key, r.value) for r in records]
        self.partitions += [partition] * len(records)
        self.batches.append(len(records))
        return self._acked()

    @staticmethod
    def _acked():
        import asyncio

        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


def _closed_sessions(count: int) -> list[dict]:
    from replaylens.config.settings import Settings
    from replaylens.streams.simulator import simulate_bytes
    from replaylens.streams.stage import Origin, SessionStage, now_ms

    stage = SessionStage.from_settings(Settings())
    for i, (_key, value) in enumerate(simulate_bytes(count, seed=5, session_end_rate=1.0)):
        stage.process(0, value, Origin("events", 0, i), now_ms())
    return stage.flush([0], close_all=True, with_state=False).closed


async def test_a_builtin_batch_isolates_a_failing_session_and_commits_after_the_acks(tmp_path):
    """The built-in summarize pass: a session whose summary raises becomes an internal-error dead
    letter with its origin and the rest of the batch goes on; the batch's offsets become
    committable once all its records are acknowledged; summaries are those of summarize()."""
    from types import SimpleNamespace

    import orjson
    from aiokafka import TopicPartition

    from replaylens.config.settings import Settings
    from replaylens.streams.wiring import build_core
    from replaylens.streams.worker import SummarizeLoop

    settings = Settings(data_dir=tmp_path)
    core = build_core(settings, with_store=False)
    assert core.sink.builtin_only
    core.sink.clock = lambda: 1_700_000_000.0  # the same generated_at for both paths
    producer = _AckingProducer()
    loop = SummarizeLoop(core, producer)
    loop.same_partitions = True  # as run() finds with equal partition counts
    sessions = _closed_sessions(6)
    keyed = [(s["session_id"].encode(), orjson.dumps(s)) for s in sessions]
    keyed[2:2] = [(b"p1", b"{not json"), (b"p2", b"[1, 2]")]  # poison between valid sessions
    values = [v for _k, v in keyed]
    tp = TopicPartition(settings.topic_closed_sessions, 3)
    records = [SimpleNamespace(topic=tp.topic, partition=3, offset=100 + i, key=k, value=v)
               for i, (k, v) in enumerate(keyed)]
    await loop.summarize_batch({tp: records})
    assert loop.in_flight == len(values)  # summarized, not yet acknowledged
    await loop.delivered()

    assert loop.acked == {tp: 100 + len(values)} and loop.summarized == len(values)
    dead = [orjson.loads(v) for t, _k, v in producer.sent if t == settings.topic_dead_letter]
    assert [(d["reason"], d["offset"], d["partition"], d["topic"]) for d in dead] == [
        ("internal-error", 102, 3, tp.topic), ("internal-error", 103, 3, tp.topic)]
    assert core.counters.internal_errors == 2
    summaries = [v for t, _k, v in producer.sent if t == settings.topic_summaries]
    expected = [x for s in sessions for x in await core.summarize(orjson.loads(orjson.dumps(s)))]
    assert summaries == [x.model_dump_json().encode() for x in expected]
    # Summaries follow their closed session's partition; dead letters are left to the partitioner.
    assert [p for (t, _k, _v), p in zip(producer.sent, producer.partitions)
            if t == settings.topic_summaries] == [3] * len(summaries)
    assert [p for (t, _k, _v), p in zip(producer.sent, producer.partitions)
            if t == settings.topic_dead_letter] == [None, None]
    assert loop.in_flight == 0
    assert len(producer.batches) > 1 and sum(producer.batches) == len(summaries)  # several 16 KiB batches


def test_closed_sessions_decode_for_the_builtin_summarizer_without_the_events_context_copies():
    """The summarize role's decoding: the session orjson gives, less each event's copy of the
    session context and id (the built-in summarizer reads the session's); any other shape is decoded whole,
    so it is summarized or fails exactly as before."""
    import orjson
    import pytest

    from replaylens.schemas.profiles import CONTEXT_ELEMENTS
    from replaylens.sinks.summarize import decode_for_builtin

    sessions = _closed_sessions(5)
    assert any(k in e for s in sessions for e in s["events"] for k in CONTEXT_ELEMENTS)
    for session in sessions:
        value = orjson.dumps(session)
        expected = orjson.loads(value)
        for event in expected["events"]:
            for name in (*CONTEXT_ELEMENTS, "session_id"):
                event.pop(name, None)
        assert decode_for_builtin(value) == expected
    for odd in (b"[1, 2]", b'{"events": 5}', b'{"events": [1, "x"]}', b'{"started_at": 1}'):
        assert decode_for_builtin(odd) == orjson.loads(odd)
    for bad in (b"{not json", b"", None):
        with pytest.raises(orjson.JSONDecodeError):
            decode_for_builtin(bad)
