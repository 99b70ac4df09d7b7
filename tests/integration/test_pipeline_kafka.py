"""The whole pipeline on the real broker with two worker processes sharing one stream.

Events in → closed sessions → summaries on the summaries topic (one per session and streaming
profile), and each worker's own DuckDB file holding the same per-URL figures, equal to a
from-scratch recompute over every closed session — although each worker closed only its share.
"""
from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from replaylens.aggregates.arithmetic import recompute
from replaylens.aggregates.store import AggregateStore
from replaylens.aggregates.urls import UrlNormalizer
from replaylens.schemas.summaries import Summary
from tests.integration.test_sessionize_kafka import SESSION_SETTINGS, by_session, simulated
from tests.worker_process import (TopicReader, WorkerProcess, create_topics, delta_ids, pipeline_env, produce,
                                   topic)

pytestmark = pytest.mark.kafka


async def both_assigned(tmp_path, alive, timeout_s: float = 60) -> None:
    """Wait until each worker's status shows sessionizing partitions of its own."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alive()
        try:
            parts = [orjson.loads((tmp_path / n / "status.json").read_bytes())["assigned_partitions"]
                     for n in ("a", "b")]
        except (FileNotFoundError, orjson.JSONDecodeError):
            parts = [[], []]
        if all(parts) and not set(parts[0]) & set(parts[1]):
            return
        await asyncio.sleep(0.2)


async def test_two_workers_summaries_on_topic_and_aggregates_agree(kafka_bootstrap, tmp_path):
    events = simulated(160, seed=9)
    expected = by_session(events)
    base = pipeline_env(kafka_bootstrap, tmp_path, **SESSION_SETTINGS)
    await create_topics(base)
    workers = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        env = dict(base, REPLAYLENS_DATA_DIR=str(tmp_path / name),
                   REPLAYLENS_DUCKDB_PATH=str(tmp_path / name / "aggregates.duckdb"))
        workers.append(WorkerProcess(env, tmp_path / f"worker-{name}.log").start())

    def alive() -> None:
        for w in workers:
            w.assert_alive()

    try:
        await both_assigned(tmp_path, alive)  # partitions shared before anything is produced
        await produce(kafka_bootstrap, topic(base, "events"),
                      [(e["session_id"].encode(), orjson.dumps(e)) for e in events])
        async with TopicReader(kafka_bootstrap, topic(base, "summaries")) as summaries:
            await summaries.until(lambda rs: {r["value"]["session_id"] for r in rs} >= set(expected),
                                  timeout_s=150, alive=alive)
        async with TopicReader(kafka_bootstrap, topic(base, "closed_sessions")) as closed:
            await closed.until(lambda rs: len({r["value"]["window_id"] for r in rs}) >= len(expected),
                               timeout_s=30)
        async with TopicReader(kafka_bootstrap, topic(base, "url_deltas")) as deltas:
            await deltas.until(lambda rs: False, timeout_s=3)
        await asyncio.sleep(2)  # materializers poll every 200 ms
        statuses = [orjson.loads((tmp_path / n / "status.json").read_bytes()) for n in ("a", "b")]
    finally:
        for w in workers:
            w.stop()

    # Summaries: one per session (one streaming profile), keyed by session id, complete.
    got = {r["value"]["session_id"] for r in summaries.records}
    assert got == set(expected)
    for r in summaries.records:
        s = Summary.model_validate(r["value"])
        assert r["key"] == s.session_id.encode() and s.status == "READY" and s.summarizer == "builtin"
        assert s.summary and s.journey and s.idempotency_key
    # Both workers had partitions and sessionized part of the stream.
    for st in statuses:
        assert st["assigned_partitions"] and st["counters"]["accepted"] > 0, st
    assert sum(st["counters"]["accepted"] for st in statuses) == len(events)
    sessions = list({r["value"]["window_id"]: r["value"] for r in closed.records}.values())
    assert len(sessions) == len(expected)

    # Aggregates: each file equals the recompute over all sessions, not just its own share.
    ids = delta_ids(deltas.records)
    now_ms = int(time.time() * 1000)
    oracle = recompute(sessions, UrlNormalizer(), now_ms, 7)
    assert oracle and "*" in oracle
    for name in ("a", "b"):
        store = AggregateStore(tmp_path / name / "aggregates.duckdb", read_only=True)
        try:
            _cols, rows = store.query("SELECT count(*) FROM applied_deltas")
            assert rows[0][0] == len(ids), f"worker {name} applied {rows[0][0]} of {len(ids)}"
            assert store.url_stats(None, now_ms) == oracle, f"worker {name} disagrees with the recompute"
        finally:
            store.close()
    assert oracle["*"].visits == len(expected)
