"""A load balancer for tests: each request goes to a random upstream.

Stands in for Fly's proxy in front of several `voicio run` machines: an
upstream that is down answers 502, and Telegram (the fake) delivers again.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter

from aiohttp import ClientError, ClientSession, web


class RandomProxy:
    """Forward every request to one of `upstreams`, chosen at random."""

    def __init__(self, upstreams: list[str], seed: int = 1) -> None:
        self.upstreams = upstreams
        self.forwarded: Counter[str] = Counter()
        self._random = random.Random(seed)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.url = ""

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self._cleanup())
            self._loop.close()

    async def _serve(self) -> None:
        self._session = ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def _cleanup(self) -> None:
        await self._session.close()
        await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.Response:
        upstream = self._random.choice(self.upstreams)
        body = await request.read()
        try:
            async with self._session.request(
                request.method,
                upstream + request.path_qs,
                data=body,
                headers={k: v for k, v in request.headers.items() if k != "Host"},
            ) as response:
                self.forwarded[upstream] += 1
                return web.Response(status=response.status, body=await response.read())
        except ClientError:
            return web.Response(status=502)
