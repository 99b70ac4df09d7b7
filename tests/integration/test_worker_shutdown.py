"""SIGTERM finishes within a bounded time although LLM calls hang: in-flight summaries are
cancelled after REPLAYLENS_SHUTDOWN_TIMEOUT_S and their sessions, never committed, are summarized
by the next worker. Marked `fault` (with `kafka`) so it can run alone."""
from __future__ import annotations

import asyncio
import signal
import subprocess
import time

import pytest

from tests.chat_server import ChatServer, answer
from tests.integration.test_sessionize_kafka import by_session, records_for, simulated
from tests.worker_process import TopicReader, WorkerProcess, create_topics, pipeline_env, produce, topic

pytestmark = [pytest.mark.kafka, pytest.mark.fault]

HANG_S = 600  # far longer than the test: only cancellation can end these calls
SHUTDOWN_S = 2
EXIT_WAIT_S = 30  # tests/worker_process.WorkerProcess.stop's own patience


async def test_sigterm_with_hung_llm_calls_exits_and_the_next_worker_summarizes_them(kafka_bootstrap, tmp_path):
    server = ChatServer()
    server.default = answer({"summary": "never sent", "key_insights": []}, delay_s=HANG_S)
    base_url = await server.start()
    events = simulated(12, seed=31)
    expected = set(by_session(events))
    env = pipeline_env(kafka_bootstrap, tmp_path, REPLAYLENS_SESSION_GRACE_MS=2_000, REPLAYLENS_SUMMARIZER="llm",
                       REPLAYLENS_LLM_BASE_URL=base_url, REPLAYLENS_LLM_TIMEOUT_S=HANG_S,
                       REPLAYLENS_LLM_MAX_RETRIES=0, REPLAYLENS_LLM_TRIAGE="all",
                       REPLAYLENS_LLM_CALLS_PER_MINUTE=0, REPLAYLENS_SHUTDOWN_TIMEOUT_S=SHUTDOWN_S)
    await create_topics(env)
    hung = WorkerProcess(env, tmp_path / "hung.log").start()
    try:
        await produce(kafka_bootstrap, topic(env, "events"), records_for(events))
        for _ in range(600):
            if server.in_flight >= 1:
                break
            hung.assert_alive()
            await asyncio.sleep(0.1)
        assert server.in_flight >= 1, "no LLM call started"
        await asyncio.sleep(1)  # more sessions reach their (hanging) LLM call
        in_flight = server.in_flight
        signalled = time.monotonic()
        hung.proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(hung.proc.wait, EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            code = None
        assert code is not None, f"SIGTERM did not stop the worker:\n{hung.tail()}"
        print(f"{in_flight} LLM calls hung at SIGTERM; exit code {code} after {time.monotonic() - signalled:.1f} s")
    finally:
        hung.kill()
        hung.log.close()
        await server.stop()

    # The next worker (built-in summaries) picks up what the first never committed.
    builtin = WorkerProcess(dict(env, REPLAYLENS_SUMMARIZER="builtin"), tmp_path / "next.log").start()
    try:
        async with TopicReader(kafka_bootstrap, topic(env, "summaries")) as summaries:
            await summaries.until(lambda rs: {r["value"]["session_id"] for r in rs} >= expected,
                                  timeout_s=90, alive=builtin.assert_alive)
    finally:
        builtin.stop()
    assert {r["value"]["session_id"] for r in summaries.records} == expected
