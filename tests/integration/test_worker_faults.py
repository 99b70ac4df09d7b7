"""A real worker on the real broker never stops on input: poison messages between valid ones are
dead-lettered with their reason and origin (the batch goes on, nothing valid is lost), and outputs
larger than the topic accepts are dead-lettered bounded (excerpt, size, digest) while the worker
goes on. Marked `kafka` and `fault` so they can run alone: `pytest -m fault`."""
from __future__ import annotations

import orjson
import pytest

from tests.integration.test_sessionize_kafka import by_session, closed_event_ids, records_for, simulated
from tests.worker_process import TopicReader, WorkerProcess, create_topics, pipeline_env, produce, topic

pytestmark = [pytest.mark.kafka, pytest.mark.fault]

POISON = [
    b"[" * 5_000 + b"]" * 5_000,  # nesting past the decoders' recursion limits
    b'{"session_id": "p1", "timestamp": 1, "type": "click", "url": "\xff\xfe"}',  # invalid UTF-8 in a string
    b'{"session_id": "p2", "event_id": "e", "timestamp": 100000000000000000000000, "type": "click"}',  # > int64
    b'{"session_id": "p3", "event_id": "e", "timestamp": -1e+23, "type": "click"}',
]
# Small enough that the larger closed sessions and their state records are refused.
MAX_REQUEST = 12_000
RECORD_OVERHEAD = 200  # the producer's size check counts the key and the record framing too


async def test_poison_and_oversized_outputs_never_stop_the_worker(kafka_bootstrap, tmp_path):
    events = simulated(120, seed=13)
    expected = by_session(events)
    env = pipeline_env(kafka_bootstrap, tmp_path, REPLAYLENS_SESSION_GRACE_MS=5_000,
                       REPLAYLENS_PRODUCER_MAX_REQUEST_SIZE=MAX_REQUEST)
    await create_topics(env)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    records = records_for(events)
    third = len(records) // 3
    mixed = records[:third] + [(None, p) for p in POISON] + records[third:2 * third] \
        + [(b"p-keyed", p) for p in POISON] + records[2 * third:]
    try:
        await produce(kafka_bootstrap, topic(env, "events"), mixed)

        def accounted(closed: dict, refused: set) -> bool:
            return set(expected) <= set(closed) | refused

        async with TopicReader(kafka_bootstrap, topic(env, "closed_sessions")) as closed, \
                TopicReader(kafka_bootstrap, topic(env, "dead_letter")) as dlq:
            for _ in range(200):
                await closed.until(lambda rs: False, timeout_s=0.3)
                await dlq.until(lambda rs: False, timeout_s=0.3)
                refused = {r["value"]["session_id"] for r in dlq.records
                           if r["value"]["reason"] == "output-too-large"
                           and r["value"]["topic"] == topic(env, "closed_sessions")}
                if accounted(closed_event_ids(closed.records), refused):
                    break
                worker.assert_alive()
        status = orjson.loads((tmp_path / "status.json").read_bytes())
        worker.assert_alive()  # nothing it read stopped it
    finally:
        worker.stop()

    got = closed_event_ids(closed.records)
    dead = [r["value"] for r in dlq.records]
    too_large = [d for d in dead if d["reason"] == "output-too-large"]
    refused_sessions = {d["session_id"] for d in too_large if d["topic"] == topic(env, "closed_sessions")}
    print(f"sessions {len(expected)}: {len(got)} on the topic, {len(refused_sessions)} refused for size; "
          f"dead letters by reason: { {r: sum(d['reason'] == r for d in dead) for r in {d['reason'] for d in dead}} }; "
          f"counters {status['counters']}")
    # Every session is either out whole or dead-lettered as too large (never silently lost).
    assert set(got) | refused_sessions == set(expected)
    for sid in got:
        assert got[sid] == expected[sid], sid
    assert refused_sessions, "the small limit must refuse some closed sessions (else this tests nothing)"
    for d in too_large:
        assert d["original_bytes"] > MAX_REQUEST - RECORD_OVERHEAD and len(d["original_sha256"]) == 64 and len(d["original"] or "") <= 4_096
    # Each poison message: one dead letter with its origin; the valid events all accepted.
    poison_dead = [d for d in dead if d["reason"] != "output-too-large"]
    assert len(poison_dead) == 2 * len(POISON), [(d["reason"], d["error"]) for d in poison_dead]
    assert all(d["topic"] == topic(env, "events") and d["offset"] is not None for d in poison_dead)
    assert status["counters"]["accepted"] == len(events)
    assert status["counters"]["outputs_too_large"] > 0  # counted (the file lags by up to a tick)


async def test_summarize_role_dead_letters_poison_closed_sessions_and_commits_the_rest(kafka_bootstrap, tmp_path):
    """A summarize-only worker (built-in summarizer: one pass per batch) over closed sessions with
    poison between them: each poison record becomes one internal-error dead letter with its
    origin, every valid session gets its summary, and the group's committed offsets reach the end
    of the topic (the batches were committed after their acks)."""
    from aiokafka.admin import AIOKafkaAdminClient

    from replaylens.streams.worker import expected_partition
    from tests.kafka_support import wait_for_commits
    from tests.test_worker_loops import _closed_sessions

    sessions = _closed_sessions(40)
    env = pipeline_env(kafka_bootstrap, tmp_path, REPLAYLENS_WORKER_ROLES="summarize")
    await create_topics(env)
    source = topic(env, "closed_sessions")
    records = [(s["session_id"].encode(), orjson.dumps(s)) for s in sessions]
    poison = [(b"poison-1", b"{not json"), (b"poison-2", b"[1, 2]")]
    records[10:10] = poison[:1]
    records[30:30] = poison[1:]
    await produce(kafka_bootstrap, source, records)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        want = {s["window_id"] for s in sessions}
        async with TopicReader(kafka_bootstrap, topic(env, "summaries")) as summaries, \
                TopicReader(kafka_bootstrap, topic(env, "dead_letter")) as dlq:
            await summaries.until(lambda rs: want <= {r["value"]["window_id"] for r in rs}, 60, worker.assert_alive)
            await dlq.until(lambda rs: len(rs) >= len(poison), 30, worker.assert_alive)
        group = f"{env['REPLAYLENS_APP_ID']}-summarize"
        committed = await wait_for_commits(admin, group, source, len(records))  # commits follow the acks within SUMMARIZE_COMMIT_INTERVAL_S
        worker.assert_alive()
    finally:
        await admin.close()
        worker.stop()
    assert want <= {r["value"]["window_id"] for r in summaries.records}
    assert all(r["value"]["status"] == "READY" for r in summaries.records)
    # Each summary in the partition Kafka's default partitioner gives its key (the session id).
    partitions = int(env["REPLAYLENS_TOPIC_PARTITIONS"])
    assert all(r["partition"] == expected_partition(r["value"]["session_id"], partitions) for r in summaries.records)
    dead = [r["value"] for r in dlq.records]
    assert sorted(d["key"] for d in dead) == ["poison-1", "poison-2"]
    assert all(d["reason"] == "internal-error" and d["topic"] == source and d["offset"] is not None
               and "while summarizing" in d["error"] for d in dead)
    assert committed == len(records)
