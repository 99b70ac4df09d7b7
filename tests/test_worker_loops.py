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
