"""Summaries never wait on a slow LLM (issue 9.6), against our real local chat server.

A hung call falls back at its own deadline without holding the others; calls in flight are
bounded; aclose() cancels calls in flight (nothing is published for them) and returns promptly.
"""
from __future__ import annotations

import asyncio

import pytest

from replaylens.config.settings import Settings
from replaylens.schemas.profiles import DEFAULT_PROFILE, SummaryProfile
from replaylens.sinks.builtin import BuiltinSummarizer
from replaylens.sinks.llm_client import ChatClient
from replaylens.sinks.llm_summarizer import LlmSummarizer, SummarizerClosed, fallback_cause
from replaylens.sinks.summarize import build_sink
from tests.chat_server import ChatServer, Reply, answer, status
from tests.llm_sessions import checkout_session

TEMPLATE = "{replay_base_url}/sessions/{session_id}?t={timestamp_ms}"
BASE = "http://replay.test"
HUNG = SummaryProfile(id="hung", llm={"pre_prompt": "HANG-MARKER"})
# A guard so a broken aclose fails the test instead of hanging it (the server hangs for good).
GUARD_S = 30


def is_hung(body) -> bool:
    return any("HANG-MARKER" in m["content"] for m in body["messages"])


@pytest.fixture
async def server():
    srv = ChatServer()
    srv.default = answer({"summary": "The user tried to pay.", "key_insights": []})
    await srv.start()
    yield srv
    await srv.stop()


def summarizer(server, *, timeout_s=30.0, max_retries=0, concurrency=4, deadline_s=None) -> LlmSummarizer:
    client = ChatClient(server.base_url, "", "m", timeout_s=timeout_s, max_retries=max_retries,
                        backoff_s=0.05, concurrency=concurrency)
    return LlmSummarizer(client, BuiltinSummarizer(TEMPLATE, BASE), TEMPLATE, BASE, deadline_s=deadline_s)


async def until(predicate, what: str) -> None:
    async with asyncio.timeout(GUARD_S):
        while not predicate():
            await asyncio.sleep(0.02)


def test_deadline_comes_from_the_timeout_and_retry_settings():
    s = Settings(summarizer="llm", llm_timeout_s=5.0, llm_max_retries=2, llm_backoff_s=0.5)
    sink = build_sink(s, [DEFAULT_PROFILE], BuiltinSummarizer(TEMPLATE, BASE))
    # 3 attempts of 5 s, and the longest backoffs between them (0.5 s, 1 s, +25% jitter).
    assert sink.llm.deadline_s == pytest.approx(3 * 5.0 + (0.5 + 1.0) * 1.25)


async def test_a_hung_call_falls_back_at_its_deadline_without_holding_the_others(server):
    server.hang_when = is_hung
    llm = summarizer(server, deadline_s=1.0)  # the call timeout (30 s) is not what saves us
    hung = asyncio.ensure_future(llm.summarize(checkout_session(session_id="s-hung"), HUNG, generated_at=1))
    await until(lambda: server.in_flight == 1, "the hung call reached the server")
    others = await asyncio.gather(*(llm.summarize(checkout_session(session_id=f"s-{i}"), DEFAULT_PROFILE,
                                                  generated_at=1) for i in range(6)))
    assert [s.summarizer for s in others] == ["llm"] * 6
    assert not hung.done(), "the others were published while the hung call is still in flight"
    async with asyncio.timeout(GUARD_S):
        fallback = await hung
    assert fallback.summarizer == "builtin-fallback" and fallback.status == "READY"
    assert "deadline" in fallback.fallback_reason
    assert llm.stats.fallbacks == {"deadline": 1} and llm.stats.answers == 6 and llm.stats.calls == 7
    await llm.aclose()


async def test_retry_after_longer_than_the_deadline_falls_back_at_the_deadline(server):
    server.default = status(429, retry_after="60")
    llm = summarizer(server, max_retries=3, deadline_s=1.0)
    async with asyncio.timeout(GUARD_S):
        summary = await llm.summarize(checkout_session(), DEFAULT_PROFILE, generated_at=1)
    assert summary.summarizer == "builtin-fallback" and "deadline" in summary.fallback_reason
    assert len(server.requests) == 1  # still sleeping out the Retry-After when the deadline hit
    await llm.aclose()


async def test_concurrent_calls_are_bounded(server):
    server.default = answer({"summary": "The user tried to pay.", "key_insights": []}, delay_s=0.1)
    llm = summarizer(server, concurrency=2)
    out = await asyncio.gather(*(llm.summarize(checkout_session(session_id=f"s-{i}"), DEFAULT_PROFILE,
                                               generated_at=1) for i in range(8)))
    assert [s.summarizer for s in out] == ["llm"] * 8
    assert server.max_in_flight == 2
    await llm.aclose()


async def test_aclose_cancels_calls_in_flight_and_publishes_nothing_for_them(server):
    server.hang_when = is_hung
    llm = summarizer(server)  # 30 s timeout: only aclose can end these calls soon
    hung = [asyncio.ensure_future(llm.summarize(checkout_session(session_id=f"s-{i}"), HUNG, generated_at=1))
            for i in range(3)]
    await until(lambda: server.in_flight == 3, "three hung calls reached the server")
    async with asyncio.timeout(GUARD_S):
        await llm.aclose()
    results = await asyncio.gather(*hung, return_exceptions=True)
    assert all(isinstance(r, SummarizerClosed) for r in results), results
    with pytest.raises(SummarizerClosed):  # and no new call starts
        await llm.summarize(checkout_session(), DEFAULT_PROFILE, generated_at=1)
    assert llm.stats.fallbacks == {}


async def test_cancelling_the_caller_cancels_its_call_and_is_not_a_close(server):
    server.hang_when = is_hung
    llm = summarizer(server)
    task = asyncio.ensure_future(llm.summarize(checkout_session(), HUNG, generated_at=1))
    await until(lambda: server.in_flight == 1, "the call reached the server")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await until(lambda: not llm._in_flight, "the call was cancelled with its caller")
    await llm.aclose()


@pytest.mark.parametrize("reason, cause", [
    ("timeout after 5.0s (after 4 attempts)", "timeout"), ("HTTP 429 (after 2 attempts)", "rate-limited"),
    ("HTTP 503 (after 4 attempts)", "server-error"), ("HTTP 401 from http://x: no", "http-error"),
    ("invalid answer: answer is not a JSON object (after 4 attempts)", "invalid-answer"),
    ("connection error: ClientConnectorError: x", "connection-error"),
    ("response has no choices[0].message.content", "malformed-response"),
    ("something new", "other")])
def test_fallback_causes_are_a_small_fixed_set(reason, cause):
    assert fallback_cause(reason) == cause


async def test_garbage_answers_fall_back_by_cause(server):
    server.default = Reply(raw_body="<html>not json</html>")
    llm = summarizer(server, max_retries=1)
    summary = await llm.summarize(checkout_session(), DEFAULT_PROFILE, generated_at=1)
    assert summary.summarizer == "builtin-fallback"
    assert llm.stats.fallbacks == {"malformed-response": 1}
    await llm.aclose()
