"""Sessionization on the real broker: a real `replaylens worker` process, real sockets.

Thousands of interleaved events in; exactly those sessions out, each with every event; bad
messages in the dead-letter topic with their origin; a worker killed mid-stream loses nothing.
"""
from __future__ import annotations

import time

import orjson
import pytest

from replaylens.streams.simulator import simulate
from tests.worker_process import TopicReader, WorkerProcess, create_topics, pipeline_env, produce, topic

pytestmark = pytest.mark.kafka

# Producing a burst makes event time race ahead of wall time, and events of one session sit on
# several partitions when some are mis-keyed: the grace period must cover that skew, as it must
# in a backfill. The simulated hour is compressed into SPAN_MS of event time that ends just
# before now, within the grace, so sessions close seconds after the burst.
SPAN_MS = 20_000
SESSION_SETTINGS = dict(REPLAYLENS_SESSION_GRACE_MS=30_000, REPLAYLENS_SESSION_GAP_MS=30 * 60_000)


def simulated(sessions: int, seed: int) -> list[dict]:
    events = list(simulate(sessions, seed=seed, session_end_rate=1.0))
    first = min(e["timestamp"] for e in events)
    last = max(e["timestamp"] for e in events)
    end = int(time.time() * 1000) - 5_000
    for e in events:
        e["timestamp"] = end - SPAN_MS + (e["timestamp"] - first) * SPAN_MS // (last - first)
    return events


def by_session(events: list[dict]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for e in events:
        out.setdefault(e["session_id"], set()).add(e["event_id"])
    return out


def records_for(events: list[dict], misroute_every: int = 0) -> list[tuple]:
    """Keyed by session id, except every n-th event sent without a key (must be re-keyed)."""
    out = []
    for i, e in enumerate(events):
        key = None if misroute_every and i % misroute_every == 0 else e["session_id"].encode()
        out.append((key, orjson.dumps(e)))
    return out


def complete(expected: dict[str, set[str]]):
    def done(records: list[dict]) -> bool:
        got = closed_event_ids(records)
        return all(ids <= got.get(sid, set()) for sid, ids in expected.items())
    return done


def assert_all_events_closed(expected, got, records) -> None:
    missing = {sid: sorted(ids - got.get(sid, set())) for sid, ids in expected.items()
               if ids - got.get(sid, set())}
    assert not missing, (f"{len(missing)} of {len(expected)} sessions miss events "
                         f"({len(records)} closed records); e.g. {list(missing.items())[:3]}")


def closed_event_ids(records: list[dict]) -> dict[str, set[str]]:
    """Event ids per session id over distinct closed windows (a re-emitted window counts once)."""
    windows = {r["value"]["window_id"]: r["value"] for r in records}
    out: dict[str, set[str]] = {}
    for w in windows.values():
        out.setdefault(w["session_id"], set()).update(e["event_id"] for e in w["events"])
    return out


BAD = [
    (b"s-bad", b"{not json", "invalid-json"),
    (b"s-bad", orjson.dumps({"timestamp": 1, "type": "click"}), "invalid-event"),
    (b"s-bad", orjson.dumps({"session_id": "s-bad", "timestamp": 1, "type": "hover"}), "invalid-event"),
    (b"s-bad", orjson.dumps({"session_id": "s-bad", "timestamp": 4_102_444_800_000, "type": "click"}),
     "future-timestamp"),
]


async def test_interleaved_sessions_out_whole_and_bad_messages_dead_lettered(kafka_bootstrap, tmp_path):
    events = simulated(250, seed=3)
    expected = by_session(events)
    env = pipeline_env(kafka_bootstrap, tmp_path, **SESSION_SETTINGS)
    await create_topics(env)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        records = records_for(events, misroute_every=7)
        half = len(records) // 2
        await produce(kafka_bootstrap, topic(env, "events"), records[:half] + [(k, v) for k, v, _ in BAD]
                      + records[half:])
        async with TopicReader(kafka_bootstrap, topic(env, "closed_sessions")) as closed:
            await closed.until(complete(expected), timeout_s=120, alive=worker.assert_alive)
            got = closed_event_ids(closed.records)
        async with TopicReader(kafka_bootstrap, topic(env, "dead_letter")) as dlq:
            await dlq.until(lambda rs: len(rs) >= len(BAD), timeout_s=30)
        late = [(r["value"]["session_id"], r["value"]["error"]) for r in dlq.records if r["value"]["reason"] == "late"]
        assert not late, f"late: {late[:5]}"
        assert_all_events_closed(expected, got, closed.records)
        assert got == expected  # exactly those sessions, each with every event
        assert len({r["value"]["window_id"] for r in closed.records}) == len(expected)
        for r in closed.records:
            assert r["key"] == r["value"]["session_id"].encode()
            ts = [e["timestamp"] for e in r["value"]["events"]]
            assert ts == sorted(ts)
        reasons = sorted(r["value"]["reason"] for r in dlq.records)
        assert reasons == sorted(reason for _, _, reason in BAD)
        for r in dlq.records:
            v = r["value"]
            assert v["topic"] == topic(env, "events") and v["offset"] is not None and v["partition"] is not None
            assert v["error"] and (v["original"] or v["original_base64"])
        worker.assert_alive()  # bad input never stopped it
    finally:
        worker.stop()


@pytest.mark.fault
async def test_worker_killed_mid_stream_loses_no_session(kafka_bootstrap, tmp_path):
    events = simulated(200, seed=5)
    expected = by_session(events)
    env = pipeline_env(kafka_bootstrap, tmp_path, **SESSION_SETTINGS)
    await create_topics(env)
    records = records_for(events)
    first, second = records[: len(records) // 2], records[len(records) // 2:]
    worker = WorkerProcess(env, tmp_path / "worker-1.log").start()
    async with TopicReader(kafka_bootstrap, topic(env, "closed_sessions")) as closed:
        try:
            await produce(kafka_bootstrap, topic(env, "events"), first)
            await closed.until(lambda rs: len(rs) >= 20, timeout_s=120, alive=worker.assert_alive)
        finally:
            worker.kill()  # SIGKILL: no clean shutdown, no final commit
        restarted = WorkerProcess(env, tmp_path / "worker-2.log").start()
        try:
            await produce(kafka_bootstrap, topic(env, "events"), second)
            await closed.until(complete(expected), timeout_s=180, alive=restarted.assert_alive)
            got = closed_event_ids(closed.records)
        finally:
            restarted.stop()
    from tests.fault_report import FaultReport
    report = FaultReport("sigkill-mid-stream", messages_in=len(records), expected=expected, closed=closed.records)
    report.print()
    assert_all_events_closed(expected, got, closed.records)


async def test_rrweb_recording_on_its_topic_becomes_sessions_and_bad_ones_dead_letter(kafka_bootstrap, tmp_path):
    from pathlib import Path

    from replaylens.streams.rrweb import ingest_recording

    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "rrweb" / "rrweb-player_demoit-app_2018.json"
    raw = fixture.read_bytes()
    mapped = ingest_recording(raw, session_id="docs-1")
    sid = mapped[0]["session_id"]
    # A short gap so the recording closes seconds after it is read.
    env = pipeline_env(kafka_bootstrap, tmp_path, REPLAYLENS_SESSION_GAP_MS=5_000, REPLAYLENS_SESSION_GRACE_MS=2_000)
    await create_topics(env)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        await produce(kafka_bootstrap, topic(env, "rrweb"), [(b"docs-1", raw), (b"junk", b'{"hello": "world"}')])
        async with TopicReader(kafka_bootstrap, topic(env, "closed_sessions")) as closed:
            await closed.until(complete({sid: {e["event_id"] for e in mapped}}), timeout_s=120,
                               alive=worker.assert_alive)
        assert closed_event_ids(closed.records) == {sid: {e["event_id"] for e in mapped}}
        navigations = sum(e["type"] == "navigate" for r in {x["value"]["window_id"]: x for x in closed.records}.values()
                          for e in r["value"]["events"])
        assert navigations == 1 and sum(e["type"] == "click" for e in mapped) == 3
        # The translator's measurements (node ids, click responses, ...) survive default masking.
        clicks = {e["event_id"]: e["properties"] for r in closed.records for e in r["value"]["events"]
                  if e["type"] == "click"}
        assert clicks == {e["event_id"]: e["properties"] for e in mapped if e["type"] == "click"}
        async with TopicReader(kafka_bootstrap, topic(env, "dead_letter")) as dlq:
            await dlq.until(lambda rs: len(rs) >= 1, timeout_s=30)
        assert [r["value"]["reason"] for r in dlq.records] == ["invalid-recording"]
        assert dlq.records[0]["value"]["topic"] == topic(env, "rrweb")
    finally:
        worker.stop()
