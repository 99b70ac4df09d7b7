"""The LLM path that holds: tokens counted by the served model's tokenizer (llama.cpp and vLLM
/tokenize), else a safe over-estimate; prompt + max output within the context window."""
from __future__ import annotations

import pytest

from replaylens.schemas.profiles import DEFAULT_PROFILE
from replaylens.sinks.builtin import BuiltinSummarizer
from replaylens.sinks.llm_client import ChatClient
from replaylens.sinks.llm_summarizer import LlmSummarizer
from replaylens.sinks.profile_view import build_view
from replaylens.sinks.token_budget import estimate_tokens, prompt_budget
from tests.chat_server import ChatServer
from tests.llm_sessions import SITE, T0, checkout_session


def long_session(n: int = 400) -> dict:
    session = checkout_session()
    session["events"] += [
        {"event_id": f"x-{i}", "session_id": "s-1", "timestamp": T0 + 41_000 + i * 10, "type": "click",
         "url": SITE + "/checkout", "target": {"selector": f"li.row-{i}", "text": f"Row {i} of the list"}}
        for i in range(n)]
    session["events"].sort(key=lambda e: e["timestamp"])
    return session


def sent_chars(server: ChatServer) -> int:
    return sum(len(m["content"]) for m in server.requests[0]["messages"])


@pytest.mark.parametrize("flavour", ["llama", "vllm"])
async def test_the_servers_tokenizer_counts_and_the_prompt_fits_it(flavour):
    # a dense tokenizer (1.5 chars per token) that the estimate alone would not fit
    server = ChatServer(tokenizer=flavour, chars_per_token=1.5)
    await server.start()
    try:
        client = ChatClient(server.base_url, "", "m", max_retries=0)
        llm = LlmSummarizer(client, BuiltinSummarizer(), max_prompt_tokens=3000, max_output_tokens=500,
                            context_tokens=4096)
        summary = await llm.summarize(long_session(), DEFAULT_PROFILE, generated_at=0)
        await client.close()
    finally:
        await server.stop()
    assert summary.summarizer == "llm", summary.fallback_reason
    assert client.tokenizer_available is True and server.tokenize_requests
    assert sent_chars(server) / 1.5 <= 3000  # within budget as the server's tokenizer counts
    assert "omitted" in server.requests[0]["messages"][1]["content"]


async def test_without_a_tokenizer_the_safe_estimate_is_used_and_remembered():
    server = ChatServer()  # no /tokenize: like OpenAI
    await server.start()
    try:
        client = ChatClient(server.base_url, "", "m", max_retries=0)
        llm = LlmSummarizer(client, BuiltinSummarizer(), max_prompt_tokens=3000, context_tokens=8192)
        await llm.summarize(long_session(), DEFAULT_PROFILE, generated_at=0)
        await llm.summarize(long_session(), DEFAULT_PROFILE, generated_at=0)
        await client.close()
    finally:
        await server.stop()
    assert client.tokenizer_available is False
    assert sent_chars(server) / 2 <= 3000


def test_the_context_window_bounds_the_prompt():
    assert prompt_budget(6000, 8192, 800) == 6000
    assert prompt_budget(6000, 4096, 800) == 3296  # prompt + max output fit the window
    with pytest.raises(ValueError, match="leaves no room"):
        prompt_budget(6000, 512, 800)


def test_the_estimate_over_counts_log_shaped_text():
    line = "e12|t+01:23|P3|click|button#pay «Pay now»"
    # real chat tokenizers give 2.4-3.1 characters per token on such rows: 2 is an over-estimate
    assert estimate_tokens(line) >= len(line) / 2.4
    assert estimate_tokens("") == 0
