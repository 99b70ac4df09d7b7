"""A scriptable OpenAI-compatible chat server on 127.0.0.1 for tests (real aiohttp).

Each POST /v1/chat/completions takes the next scripted reply (or the default one):
good answers, HTTP errors (with Retry-After), slow answers, invalid JSON, bodies without
choices. Every request body and header set is recorded so tests can assert on prompts.
"""
from __future__ import annotations

import asyncio
import json
import re
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

from aiohttp import web

EVENT_ROW = re.compile(r"^(e\d+)\|", re.MULTILINE)


@dataclass
class Reply:
    status: int = 200
    content: Union[str, Callable[[dict[str, Any]], str], None] = None
    delay_s: float = 0.0
    retry_after: Optional[str] = None
    raw_body: Optional[str] = None  # sent as-is instead of a chat completion
    model: Optional[str] = None


def answer(content: Union[str, dict, Callable[[dict[str, Any]], Any]], **kw: Any) -> Reply:
    """A 200 chat completion; dicts are sent as their JSON text, callables get the request."""
    if isinstance(content, dict):
        content = json.dumps(content)
    if callable(content):
        fn = content

        def render(body: dict[str, Any]) -> str:
            out = fn(body)
            return out if isinstance(out, str) else json.dumps(out)
        return Reply(content=render, **kw)
    return Reply(content=content, **kw)


def status(code: int, retry_after: Optional[str] = None) -> Reply:
    return Reply(status=code, retry_after=retry_after, raw_body=json.dumps({"error": f"HTTP {code}"}))


def user_prompt(body: dict[str, Any]) -> str:
    return next(m["content"] for m in body["messages"] if m["role"] == "user")


def event_ids(body: dict[str, Any]) -> list[str]:
    """The short event ids listed in the prompt's events table."""
    return EVENT_ROW.findall(user_prompt(body))


class ChatServer:
    def __init__(self, model: str = "test-model", reject_response_format: bool = False,
                 reject_schema: bool = False, tokenizer: Optional[str] = None,
                 chars_per_token: float = 1.5) -> None:
        self.model = model
        # POST /tokenize like llama.cpp ("llama": {"content"} -> {"tokens"}) or vLLM ("vllm":
        # {"prompt"} -> {"count", "tokens"}); None: no such endpoint (404), like OpenAI.
        self.tokenizer = tokenizer
        self.chars_per_token = chars_per_token
        self.tokenize_requests: list[dict[str, Any]] = []
        self.reject_response_format = reject_response_format  # like servers without JSON mode
        self.reject_schema = reject_schema  # like servers that take only {"type": "json_object"}
        self.script: deque[Reply] = deque()
        self.default: Reply = answer({"summary": "The user browsed.", "key_insights": []})
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        # Requests for which this returns True never get an answer (a hung model server).
        self.hang_when: Optional[Callable[[dict[str, Any]], bool]] = None
        self._stopping = asyncio.Event()
        self._runner: Optional[web.AppRunner] = None
        self.base_url = ""

    def push(self, *replies: Reply) -> "ChatServer":
        self.script.extend(replies)
        return self

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        if self.tokenizer is not None:
            app.router.add_post("/tokenize", self._tokenize)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self.base_url

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": self.model, "object": "model"}]})

    async def _tokenize(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.tokenize_requests.append(body)
        text = body.get("content") if self.tokenizer == "llama" else body.get("prompt")
        tokens = list(range(int(len(text or "") / self.chars_per_token) + 1))
        if self.tokenizer == "llama":
            return web.json_response({"tokens": tokens})
        return web.json_response({"count": len(tokens), "max_model_len": 8192, "tokens": tokens})

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            fmt = body.get("response_format")
            if fmt is not None and (self.reject_response_format or (self.reject_schema and "schema" in fmt)):
                return web.json_response({"error": "response_format not supported"}, status=400)
            if self.hang_when is not None and self.hang_when(body):
                await self._stopping.wait()
            reply = self.script.popleft() if self.script else self.default
            if reply.delay_s:
                try:
                    await asyncio.wait_for(self._stopping.wait(), reply.delay_s)
                except asyncio.TimeoutError:
                    pass
            return self._response(reply, body)
        finally:
            self.in_flight -= 1

    def _response(self, reply: Reply, body: dict[str, Any]) -> web.Response:
        headers = {"Retry-After": reply.retry_after} if reply.retry_after else None
        if reply.raw_body is not None:
            return web.Response(status=reply.status, text=reply.raw_body, headers=headers,
                                content_type="application/json")
        content = reply.content(body) if callable(reply.content) else reply.content
        completion = {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "model": reply.model or self.model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }
        return web.json_response(completion, status=reply.status, headers=headers)


def row_id(body: dict[str, Any], event_type: str) -> str:
    """The short id of the first events-table row of `event_type` in the prompt."""
    for line in user_prompt(body).splitlines():
        cells = line.split("|")
        if EVENT_ROW.match(line) and len(cells) > 3 and cells[3] == event_type:
            return cells[0]
    raise LookupError(f"no {event_type} row in the prompt")
