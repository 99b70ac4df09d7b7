"""End to end through the real broker: Maven-fetched Kafka -> aiokafka -> a Faust agent.

These prove the test broker works with the client stack the pipeline uses (faust-streaming 0.15.3
on aiokafka 0.14, classic consumer-group protocol against a Kafka 4.x KRaft broker).
"""
from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import faust
import orjson
import pytest

from tests.kafka_support import consume_all, produce_json

pytestmark = pytest.mark.kafka

PARTITIONS = 4
SESSIONS = 5
EVENTS_PER_SESSION = 8


def _events() -> list[tuple[str, dict]]:
    """Contract-shaped click events for a few sessions, keyed by session id."""
    records = []
    for s in range(SESSIONS):
        session_id = f"sess-{s}"
        for i in range(EVENTS_PER_SESSION):
            event = {
                "event_id": f"{session_id}-e{i}",
                "session_id": session_id,
                "timestamp": 1_700_000_000_000 + s * 60_000 + i * 1_000,
                "type": "click",
                "url": f"https://shop.example/p/{i}",
                "target": {"selector": f"#btn-{i}", "text": "Add to cart"},
            }
            records.append((session_id, event))
    return records


def _faust_app(bootstrap: str, datadir: Path) -> faust.App:
    """A throwaway Faust app: unique id (so a fresh consumer group), nothing written to the repo."""
    return faust.App(
        f"replaylens-test-{uuid.uuid4().hex[:8]}",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        web_enabled=False,
        autodiscover=False,
        datadir=str(datadir),
        topic_partitions=PARTITIONS,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
    )


async def test_aiokafka_round_trip(kafka_bootstrap, topic_factory):
    topic = await topic_factory("broker-roundtrip", partitions=PARTITIONS)
    records = _events()
    metadata = await produce_json(kafka_bootstrap, topic, records)
    assert {m.partition for m in metadata} <= set(range(PARTITIONS))

    consumed = await consume_all(kafka_bootstrap, topic, len(records), timeout_s=30)

    assert sorted(orjson.loads(r.value)["event_id"] for r in consumed) == sorted(e["event_id"] for _, e in records)
    # One key -> one partition, in produce order: what sessionizing per key relies on.
    by_session: dict[str, set[int]] = {}
    for r in consumed:
        by_session.setdefault(r.key.decode(), set()).add(r.partition)
    assert all(len(parts) == 1 for parts in by_session.values())


async def test_events_reach_a_faust_agent(kafka_bootstrap, topic_factory, tmp_path):
    topic_name = await topic_factory("broker-faust", partitions=PARTITIONS)
    records = _events()
    await produce_json(kafka_bootstrap, topic_name, records)

    app = _faust_app(kafka_bootstrap, tmp_path)
    topic = app.topic(topic_name, key_type=str, value_serializer="json", partitions=PARTITIONS)
    received: list[tuple[str, dict]] = []
    all_arrived = asyncio.Event()

    @app.agent(topic)
    async def collect(stream):
        async for key, value in stream.items():
            received.append((key, value))
            if len(received) >= len(records):
                all_arrived.set()

    await app.start()
    try:
        await asyncio.wait_for(all_arrived.wait(), timeout=60)
    finally:
        await app.stop()

    assert sorted(v["event_id"] for _, v in received) == sorted(e["event_id"] for _, e in records)
    assert all(key == value["session_id"] for key, value in received)
    # Within a session (one partition), the agent sees events in produce order.
    for s in range(SESSIONS):
        seen = [v["event_id"] for _, v in received if v["session_id"] == f"sess-{s}"]
        assert seen == [f"sess-{s}-e{i}" for i in range(EVENTS_PER_SESSION)]
