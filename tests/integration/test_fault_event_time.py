"""Fault on the real broker: a few events from the future must not make valid ones late (issue 9.3).

A real `replaylens worker` reads 3 events stamped 9 minutes ahead (inside the 10-minute future
tolerance), then several hundred valid events of whole sessions: none is dead-lettered as late,
and every session comes out whole, in one window.
"""
from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from tests.fault_report import FaultReport, by_session, peak_memory_kib
from tests.integration.test_sessionize_kafka import simulated
from tests.worker_process import TopicReader, WorkerProcess, create_topics, pipeline_env, produce, topic

pytestmark = [pytest.mark.kafka, pytest.mark.fault]

FUTURE_MS = 9 * 60_000
# Sessions end with session-end and close `grace` after it; a 30-min gap as in production.
SETTINGS = dict(REPLAYLENS_SESSION_GRACE_MS=3_000, REPLAYLENS_SESSION_GAP_MS=30 * 60_000)


async def wait_accepted(data_dir, at_least: int, worker: WorkerProcess, timeout_s: float = 60) -> None:
    """Until the worker's status file counts `at_least` accepted events."""
    deadline = time.monotonic() + timeout_s
    path = data_dir / "status.json"
    while time.monotonic() < deadline:
        worker.assert_alive()
        try:
            if orjson.loads(path.read_bytes())["counters"]["accepted"] >= at_least:
                return
        except (FileNotFoundError, orjson.JSONDecodeError, KeyError):
            pass
        await asyncio.sleep(0.3)
    pytest.fail(f"the worker did not accept {at_least} events in {timeout_s} s:\n{worker.tail()}")


async def test_three_future_events_then_hundreds_of_valid_ones_none_late(kafka_bootstrap, tmp_path):
    env = pipeline_env(kafka_bootstrap, tmp_path, **SETTINGS)
    await create_topics(env)
    now = int(time.time() * 1000)
    outliers = [{"event_id": f"future-{i}", "session_id": f"future-{i}", "timestamp": now + FUTURE_MS,
                 "type": "click"} for i in range(3)]
    valid = simulated(40, seed=21)
    assert len(valid) >= 300
    expected = by_session(valid)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    report = FaultReport("future-outliers", messages_in=len(outliers) + len(valid), expected=expected)
    try:
        await produce(kafka_bootstrap, topic(env, "events"),
                      [(e["session_id"].encode(), orjson.dumps(e)) for e in outliers])
        await wait_accepted(tmp_path, len(outliers), worker)
        await produce(kafka_bootstrap, topic(env, "events"),
                      [(e["session_id"].encode(), orjson.dumps(e)) for e in valid])

        def all_closed(records):
            got = {}
            for r in records:
                got.setdefault(r["value"]["session_id"], set()).update(e["event_id"] for e in r["value"]["events"])
            return all(ids <= got.get(sid, set()) for sid, ids in expected.items())

        async with TopicReader(kafka_bootstrap, topic(env, "closed_sessions")) as closed:
            await closed.until(all_closed, timeout_s=120, alive=worker.assert_alive)
        async with TopicReader(kafka_bootstrap, topic(env, "dead_letter")) as dlq:
            await dlq.until(lambda rs: False, timeout_s=2)  # whatever is there
        report.closed, report.dead_letters = closed.records, dlq.records
        report.peak_kib.append(peak_memory_kib(worker.proc.pid))
    finally:
        worker.stop()
    report.print()
    assert report.dead_letters_by_reason() == {}, report.dead_letters[:3]
    assert report.lost() == {}
    windows = [w for w in report.windows().values() if w["session_id"] in expected]
    assert len(windows) == len(expected), "a session came out truncated (split in several windows)"
    assert report.duplicate_events() == {}


async def test_a_whole_rrweb_recording_on_a_live_partition_is_one_session(kafka_bootstrap, tmp_path):
    """Issue 9.4: a recording sent when its session ended (here: years old) reaches a worker
    whose partitions carry live traffic: every event of it comes out in one session, none late."""
    from pathlib import Path

    from replaylens.streams.rrweb import ingest_recording

    raw = (Path(__file__).resolve().parents[1] / "fixtures" / "rrweb" / "rrweb-player_demoit-app_2018.json").read_bytes()
    mapped = ingest_recording(raw, session_id="recorded-1")
    sid = mapped[0]["session_id"]
    env = pipeline_env(kafka_bootstrap, tmp_path, **SETTINGS)
    await create_topics(env)
    live = simulated(40, seed=22)
    expected = by_session(live)
    expected[sid] = {e["event_id"] for e in mapped}
    report = FaultReport("rrweb-recording-on-live-partitions", messages_in=len(live) + 1, expected=expected)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        half = len(live) // 2
        await produce(kafka_bootstrap, topic(env, "events"),
                      [(e["session_id"].encode(), orjson.dumps(e)) for e in live[:half]])
        await wait_accepted(tmp_path, half, worker)
        await produce(kafka_bootstrap, topic(env, "rrweb"), [(b"recorded-1", raw)])
        await produce(kafka_bootstrap, topic(env, "events"),
                      [(e["session_id"].encode(), orjson.dumps(e)) for e in live[half:]])

        def all_closed(records):
            got = {}
            for r in records:
                got.setdefault(r["value"]["session_id"], set()).update(e["event_id"] for e in r["value"]["events"])
            return all(ids <= got.get(s, set()) for s, ids in expected.items())

        async with TopicReader(kafka_bootstrap, topic(env, "closed_sessions")) as closed:
            await closed.until(all_closed, timeout_s=120, alive=worker.assert_alive)
        async with TopicReader(kafka_bootstrap, topic(env, "dead_letter")) as dlq:
            await dlq.until(lambda rs: False, timeout_s=2)
        report.closed, report.dead_letters = closed.records, dlq.records
        report.peak_kib.append(peak_memory_kib(worker.proc.pid))
    finally:
        worker.stop()
    report.extra["recording events"] = len(mapped)
    report.print()
    assert report.dead_letters_by_reason() == {}
    assert report.lost() == {}
    recorded = [w for w in report.windows().values() if w["session_id"] == sid]
    assert len(recorded) == 1 and recorded[0]["event_count"] == len(mapped)
