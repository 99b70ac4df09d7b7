"""Create the pipeline's topics with matching partition counts.

Co-partitioning matters: the events, re-key and changelog topics must have the same number of
partitions, or a session's events would not meet in one worker. Creating them up front (rather
than relying on broker auto-creation) makes that explicit.
"""
from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from replaylens.config.settings import Settings


def topic_names(s: Settings) -> list[str]:
    return [s.topic_events, s.topic_rekeyed, s.topic_dead_letter, s.topic_closed_sessions,
            s.topic_summaries, s.topic_url_deltas, s.topic_rrweb, s.state_topic]


RECORDING_MAX_BYTES = 16 * 1024 * 1024
# A record batch adds headers to its records; the producer's max.request.size has the same margin.
BATCH_OVERHEAD_BYTES = 64 * 1024


def message_max_bytes(s: Settings) -> int:
    """max.message.bytes of every pipeline topic but rrweb: the largest record plus its batch."""
    return s.max_record_bytes + BATCH_OVERHEAD_BYTES


def topic_configs(s: Settings, name: str) -> dict[str, str]:
    """Every topic states the largest message it takes (README 'Limits'), so what the pipeline
    writes never depends on the broker's default."""
    if name == s.topic_rrweb:  # whole recordings are large (the broker's default is 1 MiB)
        return {"max.message.bytes": str(max(RECORDING_MAX_BYTES, message_max_bytes(s)))}
    configs = {"max.message.bytes": str(message_max_bytes(s))}
    if name == s.state_topic:  # open-session state: only the latest record per key matters
        configs["cleanup.policy"] = "compact"
    return configs


async def create_missing(admin: AIOKafkaAdminClient, topics: list[NewTopic]) -> list[str]:
    """Create those of `topics` that do not exist yet (another process may race us: fine);
    returns the names created."""
    existing = set(await admin.list_topics())
    wanted = [t for t in topics if t.name not in existing]
    if wanted:
        try:
            await admin.create_topics(wanted)
        except TopicAlreadyExistsError:
            pass
    return [t.name for t in wanted]


async def ensure_topics(s: Settings) -> list[str]:
    """Create missing topics; returns the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap)
    await admin.start()
    try:
        created = await create_missing(admin, [NewTopic(n, s.topic_partitions, s.topic_replication,
                                                        topic_configs=topic_configs(s, n))
                                               for n in topic_names(s)])
        await _wait_for_leaders(admin, topic_names(s))
        return created
    finally:
        await admin.close()


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str], timeout_s: float = 30) -> None:
    """New topics take a moment to get partition leaders; producing before that fails."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        described = await admin.describe_topics(names)
        if all(t["error_code"] == 0 and t["partitions"] and all(p["leader"] >= 0 for p in t["partitions"])
               for t in described):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"topics {names} have no partition leaders after {timeout_s} s")
        await asyncio.sleep(0.1)
