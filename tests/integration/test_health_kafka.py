"""A real worker serves /health and /metrics while it works (issue 9, operable)."""
from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time

import aiohttp
import orjson
import pytest

from tests.prometheus_text import parse, value
from tests.integration.test_sessionize_kafka import BAD, simulated
from tests.worker_process import ROOT, WorkerProcess, create_topics, pipeline_env, produce, topic

pytestmark = pytest.mark.kafka


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def scrape(port: int, until, worker: WorkerProcess, timeout_s: float = 90) -> dict:
    deadline = time.monotonic() + timeout_s
    fams: dict = {}
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            worker.assert_alive()
            try:
                async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                    fams = parse(await resp.text())
                if until(fams):
                    return fams
            except (aiohttp.ClientConnectionError, KeyError):
                pass
            await asyncio.sleep(0.5)
    return fams


async def test_worker_serves_health_and_metrics_with_its_counters(kafka_bootstrap, tmp_path):
    port = free_port()
    env = pipeline_env(kafka_bootstrap, tmp_path, REPLAYLENS_METRICS_PORT=port,
                       REPLAYLENS_SESSION_GRACE_MS=2_000)
    await create_topics(env)
    events = simulated(20, seed=4)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        await produce(kafka_bootstrap, topic(env, "events"),
                      [(e["session_id"].encode(), orjson.dumps(e)) for e in events] + [(k, v) for k, v, _ in BAD])

        def done(fams) -> bool:
            return (value(fams, "replaylens_events_total", outcome="accepted") == len(events)
                    and value(fams, "replaylens_events_total", outcome="sessions_closed") == 20)

        fams = await scrape(port, done, worker)
        assert done(fams), fams.get("replaylens_events_total")
        reasons = {dict(ls)["reason"]: v for (_, ls), v in fams["replaylens_dead_letters_total"]["samples"].items()}
        assert reasons == {"invalid-json": 1, "invalid-event": 2, "future-timestamp": 1}
        lag_topics = {dict(ls)["topic"] for (_, ls) in fams["replaylens_consumer_lag"]["samples"]}
        assert topic(env, "events") in lag_topics
        assert value(fams, "replaylens_batch_seconds", "replaylens_batch_seconds_count") >= 1
        assert value(fams, "replaylens_healthy") == 1
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/health") as resp:
                body = await resp.json()
                assert resp.status == 200 and body["status"] == "ok" and body["assigned_partitions"]
        proc = subprocess.run([sys.executable, "-m", "replaylens.cli", "health"], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and '"status": "ok"' in proc.stdout
    finally:
        worker.stop()
    proc = subprocess.run([sys.executable, "-m", "replaylens.cli", "health"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1  # the worker is gone: the healthcheck says so
