"""Both runners come from one wiring and agree: the same events through the embedded runner and
through a real `replaylens worker` on the real broker give the same closed sessions (with their
comparisons) and the same summaries, generation timestamps aside.

Comparisons depend on the baseline a session meets when it closes, and the two runners close
sessions in different flushes. So the input has two phases whose baselines are the same in both:
- phase A: simulated sessions, with `comparison_min_sessions` set to the largest visit count of any
  URL in A; while A closes, no URL's baseline reaches it (a session is compared before its own
  deltas count), so nothing is claimed, whatever the flush order;
- phase B, once every delta of A is in both baselines: a copy of an A session that visited the
  busiest URL, which now has exactly the minimum: B gets real comparisons, the same in both.
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest

from replaylens.aggregates.store import AggregateStore
from replaylens.config.settings import Settings
from replaylens.sinks.ndjson import read_summaries
from replaylens.streams.embedded import EmbeddedPipeline
from tests.integration.test_sessionize_kafka import by_session, simulated
from tests.worker_process import (TopicReader, WorkerProcess, create_topics, delta_ids, pipeline_env, produce,
                                   topic)

pytestmark = pytest.mark.kafka

GRACE_MS = 5_000
B_SPAN_MS = 2_000  # B's events squeezed into 2 s ending now: within the grace of a live partition


def embedded_settings(data_dir: Path, min_sessions: int) -> Settings:
    return Settings(data_dir=data_dir, duckdb_path=data_dir / "a.duckdb", summaries_path=data_dir / "s.ndjson",
                    session_grace_ms=GRACE_MS, comparison_min_sessions=min_sessions)


async def run_embedded(settings: Settings, events: list[dict]) -> tuple[list[dict], list[dict]]:
    await EmbeddedPipeline(settings, examples=0).run([orjson.dumps(e) for e in events], progress=False)
    closed = [orjson.loads(line) for line in (settings.data_dir / "closed-sessions.ndjson").read_bytes().splitlines()]
    return closed, read_summaries(settings.summaries_path)


def busiest_url(data_dir: Path) -> tuple[str, int]:
    store = AggregateStore(data_dir / "a.duckdb", read_only=True)
    try:
        stats = store.url_stats(None, int(time.time() * 1000))
    finally:
        store.close()
    url, s = max(((u, s) for u, s in stats.items() if u != "*"), key=lambda x: x[1].visits)
    return url, s.visits


def copy_of(session_events: list[dict], sid: str) -> list[dict]:
    """The same session under a new id, its events squeezed into B_SPAN_MS ending now."""
    first, last = session_events[0]["timestamp"], session_events[-1]["timestamp"]
    end = int(time.time() * 1000) - 500
    out = []
    for i, e in enumerate(session_events):
        c = dict(e, session_id=sid, event_id=f"{sid}-{i}")
        c["timestamp"] = end - B_SPAN_MS + (e["timestamp"] - first) * B_SPAN_MS // max(last - first, 1)
        out.append(c)
    return out


def comparable_session(s: dict) -> dict:
    # A finite embedded input closes what is still open as "end-of-input"; the worker closes the
    # same windows by their session-end event. Everything else must be equal.
    return {k: v for k, v in s.items() if k != "close_reason"}


def comparable_summary(s: dict) -> dict:
    return {k: v for k, v in s.items() if k != "generated_at"}


def by_window(items: list[dict]) -> dict[str, dict]:
    return {x["window_id"]: x for x in items}


async def test_embedded_and_worker_give_the_same_sessions_and_summaries(kafka_bootstrap, tmp_path):
    events_a = simulated(24, seed=21)
    # Phase A's minimum: the busiest URL's visit count (from a throwaway embedded run).
    await run_embedded(embedded_settings(tmp_path / "probe", 10_000), events_a)
    url, min_sessions = busiest_url(tmp_path / "probe")
    closed_probe = [orjson.loads(x) for x in (tmp_path / "probe" / "closed-sessions.ndjson").read_bytes().splitlines()]
    template = next(s for s in closed_probe if any(p.get("url") and url in p["url"] for p in s["pages"]))
    events_b = copy_of(sorted((e for e in events_a if e["session_id"] == template["session_id"]),
                              key=lambda e: e["timestamp"]), "copy-b")

    # Embedded: A, then B on the same DuckDB file.
    emb = embedded_settings(tmp_path / "embedded", min_sessions)
    emb_closed_a, emb_summaries_a = await run_embedded(emb, events_a)
    emb_closed_b, emb_summaries_b = await run_embedded(emb, events_b)

    # Worker: A, wait until its deltas are all materialized, then B.
    env = pipeline_env(kafka_bootstrap, tmp_path / "worker", REPLAYLENS_SESSION_GRACE_MS=GRACE_MS,
                       REPLAYLENS_COMPARISON_MIN_SESSIONS=min_sessions)
    (tmp_path / "worker").mkdir()
    await create_topics(env)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    expected_a = set(by_session(events_a))
    try:
        await produce(kafka_bootstrap, topic(env, "events"),
                      [(e["session_id"].encode(), orjson.dumps(e)) for e in events_a])
        async with TopicReader(kafka_bootstrap, topic(env, "summaries")) as summaries:
            await summaries.until(lambda rs: {r["value"]["session_id"] for r in rs} >= expected_a,
                                  timeout_s=90, alive=worker.assert_alive)
            async with TopicReader(kafka_bootstrap, topic(env, "url_deltas")) as deltas:
                await deltas.until(lambda rs: False, timeout_s=2)
            await materialized(tmp_path / "worker" / "status.json", delta_ids(deltas.records),
                               worker.assert_alive)
            await produce(kafka_bootstrap, topic(env, "events"),
                          [(e["session_id"].encode(), orjson.dumps(e)) for e in events_b])
            await summaries.until(lambda rs: "copy-b" in {r["value"]["session_id"] for r in rs},
                                  timeout_s=60, alive=worker.assert_alive)
        async with TopicReader(kafka_bootstrap, topic(env, "closed_sessions")) as closed:
            await closed.until(lambda rs: len(by_window([r["value"] for r in rs])) >= len(expected_a) + 1,
                               timeout_s=30)
        worker.assert_alive()
    finally:
        worker.stop()

    kafka_closed = by_window([r["value"] for r in closed.records])
    kafka_summaries = by_window([r["value"] for r in summaries.records])
    emb_closed = by_window(emb_closed_a + emb_closed_b)
    emb_summaries = by_window(emb_summaries_a + emb_summaries_b)
    assert set(kafka_closed) == set(emb_closed) and len(emb_closed) == len(expected_a) + 1
    for wid, session in emb_closed.items():
        assert comparable_session(kafka_closed[wid]) == comparable_session(session), wid
    b_window = next(w for w, s in emb_closed.items() if s["session_id"] == "copy-b")
    assert emb_closed[b_window]["comparisons"], "B must meet a baseline at its minimum"
    assert kafka_closed[b_window]["comparisons"] == emb_closed[b_window]["comparisons"]
    assert set(kafka_summaries) == set(emb_summaries)
    for wid, summary in emb_summaries.items():
        assert comparable_summary(kafka_summaries[wid]) == comparable_summary(summary), wid


async def materialized(status_path: Path, delta_ids: set[str], alive, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alive()
        try:
            if orjson.loads(status_path.read_bytes())["url_deltas_applied"] >= len(delta_ids):
                return
        except (FileNotFoundError, orjson.JSONDecodeError):
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"the worker did not apply the {len(delta_ids)} url deltas of phase A")
