"""The summarize role's batched outputs on a real broker: batches the summaries topic refuses for
their size lose nothing."""
from __future__ import annotations

import time

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.kafka_support import wait_for_commits
from tests.worker_process import TopicReader, WorkerProcess, create_topics, pipeline_env, produce, topic

pytestmark = pytest.mark.kafka

# The summaries topic's largest record batch (compressed): one summary of these sessions (0.6-1.8
# KB compressed) fits, a batch of several does not, so the worker's batches are refused whole.
TOPIC_MAX_BYTES = 2_500


async def test_a_batch_the_topic_refuses_for_its_size_is_sent_again_one_summary_at_a_time(kafka_bootstrap, tmp_path):
    """The worker sends a pass's summaries as a few batches per partition; the topic refuses
    each batch of several. Resent one record per batch, every summary is accepted (resent with
    the producer's `send`, they would be batched together and refused again, dead-lettered)."""
    from tests.test_worker_loops import _closed_sessions

    sessions = _closed_sessions(60)
    env = pipeline_env(kafka_bootstrap, tmp_path, REPLAYLENS_WORKER_ROLES="summarize")
    partitions = int(env["REPLAYLENS_TOPIC_PARTITIONS"])
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic(env, "summaries"), partitions, 1,
                                            topic_configs={"max.message.bytes": str(TOPIC_MAX_BYTES)})])
    finally:
        await admin.close()
    await create_topics(env)  # the others (the summaries topic is left as it is)
    source = topic(env, "closed_sessions")
    await produce(kafka_bootstrap, source, [(s["session_id"].encode(), orjson.dumps(s)) for s in sessions])
    want = {s["session_id"] for s in sessions}
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        async with TopicReader(kafka_bootstrap, topic(env, "summaries")) as summaries, \
                TopicReader(kafka_bootstrap, topic(env, "dead_letter")) as dlq:

            def accounted() -> bool:
                refused = {r["value"]["session_id"] for r in dlq.records}
                return want <= {r["value"]["session_id"] for r in summaries.records} | refused

            deadline = time.monotonic() + 60
            while not accounted() and time.monotonic() < deadline:
                await summaries.until(lambda rs: False, timeout_s=0.3)
                await dlq.until(lambda rs: False, timeout_s=0.3)
                worker.assert_alive()
        group = f"{env['REPLAYLENS_APP_ID']}-summarize"
        committed = await wait_for_commits(admin, group, source, len(sessions))  # committed after the acks (of the records resent alone too)
        worker.assert_alive()
    finally:
        await admin.close()
        worker.stop()

    delivered = {r["value"]["session_id"]: r for r in summaries.records}
    dead = [r["value"] for r in dlq.records]
    print(f"{len(sessions)} sessions: {len(delivered)} summaries delivered, {len(dead)} dead letters")
    assert set(delivered) == want and not dead
    assert all(r["value"]["status"] == "READY" for r in delivered.values())
    assert committed == len(sessions)
