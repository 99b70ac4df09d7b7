"""Size-proof outputs on the real broker with a real worker (issue 9, README 'Limits').

Under DEFAULT size settings, one worker takes, mixed with simulated sessions: a session whose
events pass 1 MB many times over (state and closed session), one 1 MB event (sent without key, so
it also takes the re-key path), invalid messages whose dead letters would pass 1 MB, a 10 MB rrweb
recording and a 10 MB broken one. Every event comes out in a closed session (none lost), every
record the worker wrote fits its topic, and the worker never exits nor restarts an agent.

Volume: the issue's session has 200,000 events of 300 bytes (60 MB). The pure-core test
(tests/test_sizes.py) runs exactly that; here the same size pressure comes from 8,000 events of
2 KB (16 MB: the open state passes 1 MB 16 times over, the session splits into ~60 parts), so the
test stays within a minute or two on a loaded 2-core machine.
"""
from __future__ import annotations

import collections
import time

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from replaylens.config.settings import Settings
from replaylens.streams.rrweb import load_recording, rrweb_to_events
from replaylens.streams.simulator import simulate
from tests.worker_process import TopicReader, WorkerProcess, create_topics, pipeline_env, produce, topic

pytestmark = pytest.mark.kafka

DEFAULTS = Settings()
SPAN_MS = 20_000
BIG_EVENTS, BIG_BODY = 8_000, 2_000
RRWEB_BYTES = 10 * 1024 * 1024
SETTINGS = dict(REPLAYLENS_SESSION_GRACE_MS=10_000, REPLAYLENS_SESSION_GAP_MS=20_000)


def _padded(ev: dict, body: int) -> dict:
    pad = body - len(orjson.dumps(ev)) - 24
    return {**ev, "properties": {"title": "p" * max(0, pad)}}


def big_session(t0: int) -> list[dict]:
    sid = "big:session"
    events = [_padded({"session_id": sid, "event_id": f"big-{i}", "timestamp": t0 + i * SPAN_MS // BIG_EVENTS,
                       "type": "click", "url": f"https://shop.example.com/p/{i % 13}",
                       "target": {"selector": "button.add", "text": "Add"}}, BIG_BODY)
              for i in range(BIG_EVENTS)]
    events.append({"session_id": sid, "event_id": "big-end", "timestamp": t0 + SPAN_MS, "type": "session-end"})
    return events


def one_megabyte_event(t0: int) -> dict:
    ev = {"session_id": "mega:session", "event_id": "mega-1", "timestamp": t0 + SPAN_MS // 2, "type": "custom",
          "name": "Big payload", "url": "https://shop.example.com/"}
    return {**ev, "properties": {"title": "m" * (1_000_000 - len(orjson.dumps(ev)) - 40)}}


def recording(t0: int, size: int) -> bytes:
    """A 10 MB rrweb recording: a huge full snapshot (as real ones are), clicks and a typed value."""
    style = {"id": 3, "type": 3, "textContent": "s" * size, "isStyle": True}
    snapshot = {"type": 2, "timestamp": t0 + 10, "data": {"node": {"id": 1, "type": 0, "childNodes": [
        {"id": 2, "type": 2, "tagName": "style", "attributes": {}, "childNodes": [style]},
        {"id": 4, "type": 2, "tagName": "button", "attributes": {"id": "buy"}, "childNodes": [
            {"id": 5, "type": 3, "textContent": "Buy"}]},
        {"id": 6, "type": 2, "tagName": "input", "attributes": {"id": "q"}, "childNodes": []}]}}}
    events = [{"type": 4, "timestamp": t0, "data": {"href": "https://shop.example.com/rr", "width": 1, "height": 1}},
              snapshot]
    for i in range(40):
        events.append({"type": 3, "timestamp": t0 + 100 + i * 100, "data": {"source": 2, "type": 2, "id": 4}})
    events.append({"type": 3, "timestamp": t0 + 4_500, "data": {"source": 5, "id": 6, "text": "t" * 300_000}})
    raw = orjson.dumps(events)
    assert len(raw) >= size
    return raw


def simulated(t0: int, sessions: int) -> list[dict]:
    events = list(simulate(sessions, seed=11, session_end_rate=1.0))
    first, last = min(e["timestamp"] for e in events), max(e["timestamp"] for e in events)
    for e in events:
        e["timestamp"] = t0 + 5_000 + (e["timestamp"] - first) * (SPAN_MS - 5_000) // (last - first)
    return events


def invalid_messages() -> list[tuple[bytes, bytes, str]]:
    head = b'{"session_id":"bad:1","event_id":"x","type":"click","timestamp":1,"note":"'
    return [
        (b"bad:1", head + b"\xff\xfe" * 450_000 + b'"}', "invalid-json"),  # base64 would be 1.2 MB
        (b"bad:2", head + b'"\\\x01' * 300_000 + b'"}', "invalid-json"),  # quoting would be ~5 MB
        (b"bad:3", b'{"session_id":"bad:3","type":"click","timestamp":1,"p":' + b"[" * 3000 + b"]" * 3000 + b"}",
         "invalid-json"),
        (None, b'{"session_id":"bad:4","event_id":"x","type":"click","timestamp":-1e+23}', "invalid-event"),
        (b"bad:5", b'{"session_id":"bad:5","event_id":"x","type":"hover","timestamp":1,"v":"' + b"v" * 900_000 + b'"}',
         "invalid-event"),
    ]


async def _produce(bootstrap: str, topic_name: str, records) -> None:
    await produce(bootstrap, topic_name, list(records), max_request_size=16 * 1024 * 1024)


async def _record_sizes(bootstrap: str, topic_name: str, partitions: int) -> list[int]:
    """Sizes of every record value in a topic (tombstones count 0), read to the end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    sizes: list[int] = []
    try:
        parts = [TopicPartition(topic_name, p) for p in range(partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=500)
            for recs in batch.values():
                sizes += [len(r.value or b"") for r in recs]
    finally:
        await consumer.stop()
    return sizes


def _peak_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))


async def test_oversized_inputs_and_outputs_lose_nothing_and_never_stop_the_worker(kafka_bootstrap, tmp_path):
    t0 = int(time.time() * 1000) - SPAN_MS - 3_000
    env = pipeline_env(kafka_bootstrap, tmp_path, **SETTINGS)
    await create_topics(env)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    started = time.monotonic()
    try:
        # 1. The rrweb recordings first (their events are the earliest); wait until mapped.
        rr = recording(t0, RRWEB_BYTES)
        rr_events = rrweb_to_events(load_recording(rr), session_id="rr:session")
        broken_rr = b'[{"type":4,"timestamp":1' + b"9" * RRWEB_BYTES + b"}]"
        await _produce(kafka_bootstrap, topic(env, "rrweb"), [(b"rr:session", rr), (b"rr:broken", broken_rr)])
        async with TopicReader(kafka_bootstrap, topic(env, "events")) as mapped:
            await mapped.until(lambda rs: len(rs) >= len(rr_events), timeout_s=90, alive=worker.assert_alive)
            assert len(mapped.records) == len(rr_events)
            assert max(len(orjson.dumps(r["value"])) for r in mapped.records) <= DEFAULTS.max_event_bytes

        # 2. Everything else, in time order, the invalid messages in the middle.
        valid = sorted(big_session(t0) + simulated(t0, 120), key=lambda e: e["timestamp"])
        mega = one_megabyte_event(t0)
        bad = invalid_messages()
        records = [(e["session_id"].encode(), orjson.dumps(e)) for e in valid]
        half = len(records) // 2
        records = records[:half] + [(None, orjson.dumps(mega))] + [(k, v) for k, v, _ in bad] + records[half:]
        await _produce(kafka_bootstrap, topic(env, "events"), records)
        messages_in = len(records) + 2

        expected: dict[str, set[str]] = collections.defaultdict(set)
        for e in valid + [mega] + rr_events:
            expected[e["session_id"]].add(e["event_id"])

        def all_out(rs) -> bool:
            got = _event_ids(rs)
            return all(ids <= got.get(sid, set()) for sid, ids in expected.items())

        async with TopicReader(kafka_bootstrap, topic(env, "closed_sessions")) as closed:
            await closed.until(all_out, timeout_s=150, alive=worker.assert_alive)
        async with TopicReader(kafka_bootstrap, topic(env, "dead_letter")) as dlq:
            await dlq.until(lambda rs: len(rs) >= len(bad) + 1, timeout_s=30, alive=worker.assert_alive)
        worker.assert_alive()
        rss_kb = _peak_rss_kb(worker.proc.pid)
        got = _event_ids(closed.records)
        lost = {sid: len(ids - got.get(sid, set())) for sid, ids in expected.items() if ids - got.get(sid, set())}
        windows = {r["value"]["window_id"]: r["value"] for r in closed.records}
        big_parts = sorted((w for w in windows.values() if w["session_id"] == "big:session"), key=lambda w: w["part"])
        reasons = collections.Counter(r["value"]["reason"] for r in dlq.records)
        partitions = int(env["REPLAYLENS_TOPIC_PARTITIONS"])
        closed_sizes = await _record_sizes(kafka_bootstrap, topic(env, "closed_sessions"), partitions)
        state_sizes = await _record_sizes(kafka_bootstrap, DEFAULTS.model_copy(
            update={"app_id": env["REPLAYLENS_APP_ID"]}).state_topic, partitions)
        dead_sizes = [len(orjson.dumps(r["value"])) for r in dlq.records]
        async with TopicReader(kafka_bootstrap, topic(env, "summaries")) as summaries:
            await summaries.until(lambda rs: len(rs) >= len(windows), timeout_s=60, alive=worker.assert_alive)
        summary_sizes = await _record_sizes(kafka_bootstrap, topic(env, "summaries"), partitions)
        print(f"\nmessages_in={messages_in} sessions_in={len(expected)} sessions_out={len(got)} "
              f"closed_records={len(closed.records)} events_in={sum(map(len, expected.values()))} "
              f"events_lost={sum(lost.values())} big_session_parts={len(big_parts)} "
              f"largest_closed={max(closed_sizes)} largest_state={max(state_sizes)} "
              f"state_topic_bytes={sum(state_sizes)} largest_dead_letter={max(dead_sizes)} "
              f"summaries={len(summary_sizes)} largest_summary={max(summary_sizes, default=0)} "
              f"dead_letters={dict(reasons)} peak_rss_mb={rss_kb / 1024:.0f} "
              f"seconds={time.monotonic() - started:.0f}")

        assert not lost, f"events lost: {lost}"
        assert max(closed_sizes) <= DEFAULTS.max_record_bytes
        assert max(state_sizes) <= DEFAULTS.max_record_bytes and sum(state_sizes) > 2 * 1_000_000
        assert max(dead_sizes) < 64 * 1024
        assert len(summary_sizes) >= len(windows) and max(summary_sizes) <= DEFAULTS.max_record_bytes
        assert [w["part"] for w in big_parts] == list(range(1, len(big_parts) + 1)) and len(big_parts) > 20
        for prev, part in zip(big_parts, big_parts[1:]):
            assert part["previous_window_id"] == prev["window_id"]
        mega_out = next(e for w in windows.values() for e in w["events"] if e["event_id"] == "mega-1")
        assert mega_out["_truncated"]["original_bytes"] == len(orjson.dumps(mega))
        by_session = {r["value"]["session_id"] or r["value"]["key"]: r["value"] for r in dlq.records}
        for key, raw, reason in bad:
            sid = (key or b"bad:4").decode()
            assert by_session[sid]["reason"] == reason and by_session[sid]["original_bytes"] == len(raw)
        assert by_session["rr:broken"]["reason"] == "invalid-recording"
        assert by_session["rr:broken"]["original_bytes"] == len(broken_rr)
        assert "late" not in reasons
        log = worker.tail(400)
        assert "Traceback" not in log and "Crashed" not in log, log[-3000:]
    finally:
        worker.stop()


def _event_ids(records) -> dict[str, set[str]]:
    out: dict[str, set[str]] = collections.defaultdict(set)
    for w in {r["value"]["window_id"]: r["value"] for r in records}.values():
        out[w["session_id"]].update(e["event_id"] for e in w["events"])
    return out


async def test_a_big_open_session_survives_sigkill_from_its_state_pieces(kafka_bootstrap, tmp_path):
    """The open state of a session far over 1 MB is written as pieces; a worker killed with SIGKILL
    mid-session is replaced by one that reads them back: no event lost, parts still one chain."""
    t0 = int(time.time() * 1000) - SPAN_MS - 3_000
    env = pipeline_env(kafka_bootstrap, tmp_path, REPLAYLENS_SESSION_GRACE_MS=10_000,
                       REPLAYLENS_SESSION_GAP_MS=300_000)
    await create_topics(env)
    big = big_session(t0)[: BIG_EVENTS * 3 // 4] + big_session(t0)[-1:]
    valid = sorted(big + simulated(t0, 60), key=lambda e: e["timestamp"])
    records = [(e["session_id"].encode(), orjson.dumps(e)) for e in valid]
    first, second = records[: len(records) // 2], records[len(records) // 2:]
    expected: dict[str, set[str]] = collections.defaultdict(set)
    for e in valid:
        expected[e["session_id"]].add(e["event_id"])
    started = time.monotonic()
    worker = WorkerProcess(env, tmp_path / "worker-1.log").start()
    async with TopicReader(kafka_bootstrap, topic(env, "closed_sessions")) as closed:
        try:
            await _produce(kafka_bootstrap, topic(env, "events"), first)
            await closed.until(lambda rs: sum(r["value"]["session_id"] == "big:session" for r in rs) >= 8,
                               timeout_s=90, alive=worker.assert_alive)
        finally:
            worker.kill()  # SIGKILL mid-session: the rest of its open state is only in the pieces
        parts_before = sum(r["value"]["session_id"] == "big:session" for r in closed.records)
        restarted = WorkerProcess(env, tmp_path / "worker-2.log").start()
        try:
            await _produce(kafka_bootstrap, topic(env, "events"), second)

            def all_out(rs) -> bool:
                got = _event_ids(rs)
                return all(ids <= got.get(sid, set()) for sid, ids in expected.items())

            await closed.until(all_out, timeout_s=150, alive=restarted.assert_alive)
            restarted.assert_alive()
            rss_kb = _peak_rss_kb(restarted.proc.pid)
        finally:
            restarted.stop()
    got = _event_ids(closed.records)
    lost = {sid: len(ids - got.get(sid, set())) for sid, ids in expected.items() if ids - got.get(sid, set())}
    windows = {r["value"]["window_id"]: r["value"] for r in closed.records}
    parts: dict[int, set[str]] = collections.defaultdict(set)
    for w in windows.values():
        if w["session_id"] == "big:session":
            parts[w["part"]].add(w["window_id"])
    duplicates = len(closed.records) - len(windows)
    print(f"\nmessages_in={len(records)} sessions_in={len(expected)} sessions_out={len(got)} "
          f"events_in={sum(map(len, expected.values()))} events_lost={sum(lost.values())} "
          f"big_parts_before_kill={parts_before} big_parts={len(parts)} duplicates_by_window_id={duplicates} "
          f"peak_rss_mb_restarted={rss_kb / 1024:.0f} seconds={time.monotonic() - started:.0f}")
    assert not lost, f"events lost: {lost}"
    assert sorted(parts) == list(range(1, len(parts) + 1)) and all(len(ids) == 1 for ids in parts.values())
    chain = [next(iter(parts[k])) for k in sorted(parts)]
    for k in range(2, len(chain) + 1):
        assert windows[chain[k - 1]]["previous_window_id"] == chain[k - 2]
