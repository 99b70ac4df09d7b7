"""The validity gate checks what an LLM answer states against the session (sinks/fact_check.py)."""
from __future__ import annotations

import pytest

from replaylens.schemas.profiles import DEFAULT_PROFILE
from replaylens.sinks.builtin import BuiltinSummarizer
from replaylens.sinks.fact_check import SessionFacts, contradictions
from replaylens.sinks.llm_client import ChatClient
from replaylens.sinks.llm_summarizer import LlmSummarizer
from tests.chat_server import ChatServer, answer
from tests.llm_sessions import checkout_session

FACTS = SessionFacts(duration_ms=6 * 60_000, page_views=4, distinct_pages=3, error_issues=1, error_events=2,
                     outcome="abandoned", paths=frozenset({"/", "/cart", "/checkout", "/api/pay"}))


@pytest.mark.parametrize("text,wrong", [
    ("The user spent 2.5 hours on the site.", "says 2.5 hours, the session lasted 6 min"),
    ("They visited 9 pages.", "says 9 pages, the session viewed 4 (3 different)"),
    ("They hit 5 errors.", "says 5 errors, the session had 2"),
    ("The visit went smoothly with no errors.", "says there were no errors, the session had 2"),
    ("In the end they completed the order.", "says the goal was reached, the outcome is abandoned"),
    ("They lingered on /account before leaving.", "names the page /account, which the session never visited"),
])
def test_contradictions_are_found_and_said(text, wrong):
    assert contradictions(text, FACTS) == [wrong]


@pytest.mark.parametrize("text", [
    "The user spent 6 minutes, viewed 4 pages (3 different) and gave up on /checkout after 2 errors.",
    "A 502 from /api/pay stopped the payment [00:40](http://r/s?t=1700000040000).",
    "They abandoned the checkout.",
])
def test_true_statements_pass(text):
    assert contradictions(text, FACTS) == []


async def test_an_answer_the_session_contradicts_is_rejected_then_the_builtin_is_used():
    server = ChatServer()
    server.default = answer({"summary": "The shopper spent 2.5 hours browsing and completed the order.",
                             "key_insights": []})
    await server.start()
    try:
        client = ChatClient(server.base_url, "", "m", max_retries=1, sleep=_no_wait)
        llm = LlmSummarizer(client, BuiltinSummarizer())
        summary = await llm.summarize(checkout_session(), DEFAULT_PROFILE, generated_at=0)
        await client.close()
    finally:
        await server.stop()
    assert summary.summarizer == "builtin-fallback" and len(server.requests) == 2
    assert "contradicts the session: says 2.5 hours" in summary.fallback_reason


async def _no_wait(_delay: float) -> None:
    return None
