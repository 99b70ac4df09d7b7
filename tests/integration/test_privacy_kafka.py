"""No planted secret reaches a topic: a real worker on the real broker, every topic it writes read
back raw (events in; closed sessions, open-session state, summaries, url deltas, dead letters out)."""
from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from tests import labelled_sessions as labelled
from tests.test_privacy_outputs import SECRET_DEAD_LETTER
from tests.worker_process import WorkerProcess, create_topics, pipeline_env, produce, topic

pytestmark = pytest.mark.kafka

OUTPUT_TOPICS = ("closed_sessions", "summaries", "url_deltas", "dead_letter", "rekeyed")


async def read_raw(bootstrap: str, name: str, quiet_s: float = 2.0, max_s: float = 30.0) -> list[bytes]:
    """Every record value of a topic, as bytes (tombstones skipped), until it stays quiet (at
    most `max_s`: a topic written to all the time still ends the read)."""
    consumer = AIOKafkaConsumer(name, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    values: list[bytes] = []
    try:
        quiet_since = started = time.monotonic()
        while time.monotonic() - quiet_since < quiet_s and time.monotonic() - started < max_s:
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                values += [r.value for r in records if r.value is not None]
                quiet_since = time.monotonic()
    finally:
        await consumer.stop()
    return values


def rebased(session: dict, start_ms: int) -> list[dict]:
    """The session's events moved to start at `start_ms`, ended by a session-end event."""
    shift = start_ms - session["started_at"]
    events = [dict(e, timestamp=e["timestamp"] + shift) for e in session["events"]]
    events.append({"event_id": f"{session['session_id']}-end", "session_id": session["session_id"],
                   "timestamp": events[-1]["timestamp"] + 1, "type": "session-end"})
    return events


async def test_no_planted_secret_on_any_topic(kafka_bootstrap, tmp_path):
    env = pipeline_env(kafka_bootstrap, tmp_path, REPLAYLENS_SESSION_GRACE_MS=500,
                       REPLAYLENS_SESSION_GAP_MS=60_000, REPLAYLENS_PRIVACY_IDENTITY_SECRET="k")
    await create_topics(env)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    now = int(time.time() * 1000)
    events = rebased(labelled.with_secrets(), now - 60_000)
    dead = dict(SECRET_DEAD_LETTER, timestamp=now)
    try:
        await asyncio.sleep(6)  # join the group
        await produce(kafka_bootstrap, topic(env, "events"),
                      [(e["session_id"].encode(), orjson.dumps(e)) for e in events]
                      + [(b"secrets", orjson.dumps(dead))])
        deadline = time.monotonic() + 90
        summaries: list[bytes] = []
        while not summaries and time.monotonic() < deadline:
            worker.assert_alive()
            summaries = await read_raw(kafka_bootstrap, topic(env, "summaries"), quiet_s=1.0)
        assert summaries, f"no summary within 90 s:\n{worker.tail()}"
        seen = {name: await read_raw(kafka_bootstrap, topic(env, name)) for name in OUTPUT_TOPICS}
        seen["state"] = await read_raw(kafka_bootstrap, f"{env['REPLAYLENS_APP_ID']}-open-sessions")
    finally:
        worker.stop()
    assert seen["closed_sessions"] and seen["dead_letter"] and seen["state"]
    for name, values in seen.items():
        text = b"\n".join(values).decode("utf-8", "replace")
        for secret in labelled.PLANTED_SECRETS:
            assert secret not in text, f"{secret!r} leaked onto the {name} topic"
    closed = orjson.loads(seen["closed_sessions"][0])
    assert closed["context"]["user"]["email"].startswith("hmac:")
    log = (tmp_path / "worker.log").read_text(errors="replace")
    for secret in labelled.PLANTED_SECRETS:
        assert secret not in log, f"{secret!r} leaked into the worker log"
