"""A webhook receiver of ours on 127.0.0.1 (real aiohttp): records what it gets, answers as
each test scripts it (statuses in order, a stall, a redirect)."""
from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Optional

from aiohttp import web


class Receiver:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.hits: dict[str, int] = {}
        self.statuses: list[int] = []  # answered in order, then `status`
        self.status = 200
        self.redirect_to: Optional[str] = None
        self.stall_s = 0.0
        self._runner: Optional[web.AppRunner] = None
        self.base_url = ""

    async def start(self) -> "Receiver":
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        app.router.add_post("/moved", self._moved)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    @property
    def url(self) -> str:
        return self.base_url + "/hook"

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    def _count(self, request: web.Request) -> None:
        self.hits[request.path] = self.hits.get(request.path, 0) + 1

    async def _hook(self, request: web.Request) -> web.Response:
        self._count(request)
        if self.stall_s:
            await asyncio.sleep(self.stall_s)
        status = self.statuses.pop(0) if self.statuses else self.status
        if status >= 300:
            return web.Response(status=status, headers={"Retry-After": "0"})
        self.received.append(await request.json())
        return web.json_response({"ok": True})

    async def _moved(self, request: web.Request) -> web.Response:
        self._count(request)
        raise web.HTTPTemporaryRedirect(self.redirect_to or "/hook")

    async def wait_for(self, done: Callable[[list[dict[str, Any]]], bool], timeout_s: float) -> list[dict[str, Any]]:
        """Wait until done(received) or the timeout; the caller's assertions say what is missing."""
        deadline = time.monotonic() + timeout_s
        while not done(self.received) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        return self.received
