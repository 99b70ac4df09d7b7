"""ChatClient against a real local aiohttp chat server: retries, backoff, JSON mode, limits."""
from __future__ import annotations

import asyncio
import socket

import pytest

from replaylens.sinks.llm_client import ChatClient, InvalidAnswer, LlmUnavailable
from tests.chat_server import ChatServer, Reply, answer, status

MESSAGES = [{"role": "system", "content": "sys"}, {"role": "user", "content": "hello"}]


@pytest.fixture
async def server():
    srv = ChatServer(model="served-model")
    await srv.start()
    yield srv
    await srv.stop()


class Sleeps:
    """Records backoff delays instead of waiting them out."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def make_client(server: ChatServer, sleeps: Sleeps | None = None, **kw) -> ChatClient:
    options = dict(api_key="sk-test", model="cfg-model", timeout_s=5, max_retries=2, backoff_s=0.5,
                   concurrency=4, sleep=sleeps or Sleeps())
    options.update(kw)
    return ChatClient(server.base_url, **options)


def accept(text: str) -> str:
    return text


def must_say_ok(text: str) -> str:
    if "ok" not in text:
        raise InvalidAnswer("no ok")
    return text


async def test_good_answer_sends_openai_request_and_reports_model(server):
    server.push(answer("all fine ok"))
    async with make_client(server) as client:
        value, model, attempts = await client.complete(MESSAGES, validate=accept, json_mode=True,
                                                       temperature=0.3, max_tokens=123)
    assert (value, model, attempts) == ("all fine ok", "served-model", 1)
    body, headers = server.requests[0], server.headers[0]
    assert body["model"] == "cfg-model" and body["messages"] == MESSAGES
    assert body["temperature"] == 0.3 and body["max_tokens"] == 123
    assert body["response_format"] == {"type": "json_object"}
    assert headers["Authorization"] == "Bearer sk-test"


async def test_no_key_no_auth_header_and_model_override(server):
    async with make_client(server, api_key="") as client:
        await client.complete(MESSAGES, validate=accept, model="profile-model")
    assert "Authorization" not in server.headers[0]
    assert server.requests[0]["model"] == "profile-model"
    assert "response_format" not in server.requests[0]


async def test_server_error_is_retried_with_exponential_backoff(server):
    sleeps = Sleeps()
    server.push(status(500), status(503), answer("ok"))
    async with make_client(server, sleeps) as client:
        _, _, attempts = await client.complete(MESSAGES, validate=accept)
    assert attempts == 3 and len(server.requests) == 3
    assert 0.5 <= sleeps.delays[0] <= 0.5 * 1.25 and 1.0 <= sleeps.delays[1] <= 1.0 * 1.25


async def test_429_honours_retry_after(server):
    sleeps = Sleeps()
    server.push(status(429, retry_after="7"), answer("ok"))
    async with make_client(server, sleeps) as client:
        _, _, attempts = await client.complete(MESSAGES, validate=accept)
    assert attempts == 2 and sleeps.delays == [7.0]


async def test_timeout_is_retried(server):
    server.push(Reply(content="late", delay_s=10), answer("ok"))
    async with make_client(server, timeout_s=0.2) as client:
        value, _, attempts = await client.complete(MESSAGES, validate=accept)
    assert value == "ok" and attempts == 2


async def test_invalid_answer_is_retried_then_accepted(server):
    server.push(answer("nope"), answer("this is ok"))
    async with make_client(server) as client:
        value, _, attempts = await client.complete(MESSAGES, validate=must_say_ok)
    assert value == "this is ok" and attempts == 2


async def test_gives_up_after_the_retries_with_the_last_reason(server):
    server.default = answer("nope")
    async with make_client(server, max_retries=3) as client:
        with pytest.raises(LlmUnavailable) as info:
            await client.complete(MESSAGES, validate=must_say_ok)
    assert info.value.attempts == 4 and len(server.requests) == 4
    assert "invalid answer: no ok" in info.value.reason and "4 attempts" in info.value.reason


async def test_client_errors_are_not_retried(server):
    server.push(status(401))
    async with make_client(server) as client:
        with pytest.raises(LlmUnavailable, match="HTTP 401"):
            await client.complete(MESSAGES, validate=accept)
    assert len(server.requests) == 1


async def test_json_mode_is_dropped_for_the_request_the_server_rejects_it_in_only():
    server = ChatServer(reject_response_format=True)
    await server.start()
    try:
        async with make_client(server) as client:
            value, _, attempts = await client.complete(MESSAGES, validate=accept, json_mode=True)
            assert attempts == 1
            await client.complete(MESSAGES, validate=accept, json_mode=True)
        # a 400 may be about one prompt: the next request asks for JSON mode again
        assert ["response_format" in r for r in server.requests] == [True, False, True, False]
    finally:
        await server.stop()


SCHEMA = {"type": "object", "required": ["summary"]}


def formats(server: ChatServer) -> list:
    return [r.get("response_format") for r in server.requests]


async def test_schema_hint_is_sent_inside_response_format(server):
    async with make_client(server) as client:
        await client.complete(MESSAGES, validate=accept, json_mode=True, json_schema=SCHEMA)
    assert formats(server) == [{"type": "json_object", "schema": SCHEMA}]


async def test_schema_hint_is_dropped_when_only_plain_json_mode_is_supported():
    server = ChatServer(reject_schema=True)
    await server.start()
    try:
        async with make_client(server) as client:
            await client.complete(MESSAGES, validate=accept, json_mode=True, json_schema=SCHEMA)
            await client.complete(MESSAGES, validate=accept, json_mode=True, json_schema=SCHEMA)
        plain = {"type": "json_object"}
        hinted = {"type": "json_object", "schema": SCHEMA}
        assert formats(server) == [hinted, plain, hinted, plain]
    finally:
        await server.stop()


async def test_schema_and_json_mode_are_dropped_one_after_the_other():
    server = ChatServer(reject_response_format=True)
    await server.start()
    try:
        async with make_client(server) as client:
            _, _, attempts = await client.complete(MESSAGES, validate=accept, json_mode=True,
                                                   json_schema=SCHEMA)
        assert attempts == 1
        assert formats(server) == [{"type": "json_object", "schema": SCHEMA}, {"type": "json_object"}, None]
    finally:
        await server.stop()


async def test_malformed_bodies_are_retried(server):
    server.push(Reply(raw_body="<html>gateway</html>"), Reply(raw_body='{"choices": []}'),
                Reply(content=""), answer("ok"))
    async with make_client(server, max_retries=3) as client:
        value, _, attempts = await client.complete(MESSAGES, validate=accept)
    assert value == "ok" and attempts == 4


async def test_concurrency_is_limited(server):
    server.default = Reply(content="ok", delay_s=0.05)
    async with make_client(server, concurrency=2) as client:
        await asyncio.gather(*(client.complete(MESSAGES, validate=accept) for _ in range(6)))
    assert len(server.requests) == 6 and server.max_in_flight == 2


async def test_unreachable_server_is_unavailable_after_retries():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps = Sleeps()
    async with ChatClient(f"http://127.0.0.1:{port}/v1", max_retries=1, sleep=sleeps) as client:
        with pytest.raises(LlmUnavailable, match="connection error") as info:
            await client.complete(MESSAGES, validate=accept)
    assert info.value.attempts == 2 and len(sleeps.delays) == 1


def test_backoff_grows_exponentially_with_bounded_jitter():
    client = ChatClient("http://127.0.0.1:1/v1", backoff_s=1.0)
    for attempt, base in ((1, 1.0), (2, 2.0), (3, 4.0)):
        assert base <= client.backoff_delay(attempt) <= base * 1.25
