"""Voicio's HTTP side: Telegram's webhook, health checks and Prometheus metrics.

- `POST <WEBHOOK_PATH>`: a Telegram delivery. The secret header is compared
  in constant time; a wrong or missing one gets 403 and nothing is stored. An
  update is answered 200 only once it is committed to the inbox; while the
  database is away (or the service drains) the answer is 503 and Telegram
  delivers again later.
- `GET /healthz`: the process and its event loop are alive.
- `GET /readyz`: the database answers, the actors run, and no drain is under
  way; 503 with the reasons otherwise.
- `GET /metrics`: Prometheus text format.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from telegram import Bot, Update

from voicio.bot.updates import PersistingUpdateQueue

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header's name
# Telegram waits about a minute for an answer; answer well before, so a slow
# database turns into a clean 503 and a redelivery.
STORE_TIMEOUT_SECONDS = 10.0

Readiness = Callable[[], Awaitable[dict[str, bool]]]


class Webhook:
    """Receive Telegram's deliveries into the persisting update queue."""

    def __init__(
        self,
        *,
        bot: Bot,
        queue: PersistingUpdateQueue,
        secret: str,
        draining: Callable[[], bool],
    ) -> None:
        self._bot = bot
        self._queue = queue
        self._secret = secret.encode()
        self._draining = draining

    async def receive(self, request: Request) -> Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self._secret):
            logger.warning(
                "Rejected a webhook request from %s: %s secret token",
                request.client.host if request.client else "?",
                "wrong" if given else "no",
            )
            return JSONResponse({"error": "forbidden"}, status_code=403)
        if self._draining():
            return JSONResponse({"error": "draining"}, status_code=503)
        try:
            data = json.loads(await request.body())
            update = Update.de_json(data, self._bot)
        except (ValueError, TypeError, KeyError, AttributeError):
            logger.warning("Rejected a webhook request: not a Telegram update")
            return JSONResponse({"error": "bad update"}, status_code=400)
        await self._queue.put(update)
        try:
            await asyncio.wait_for(self._queue.wait_stored(), STORE_TIMEOUT_SECONDS)
        except TimeoutError:
            logger.warning(
                "Update %s not stored in time; answering 503", update.update_id
            )
            return JSONResponse({"error": "not stored"}, status_code=503)
        return Response(status_code=200)


def create_app(
    *,
    registry: CollectorRegistry,
    readiness: Readiness,
    webhook: Webhook | None,
    webhook_path: str,
) -> Starlette:
    """Build the ASGI app; the webhook route exists only in webhook mode."""

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        checks = await readiness()
        ready = all(checks.values())
        return JSONResponse(
            {"ready": ready, "checks": checks}, status_code=200 if ready else 503
        )

    async def metrics(_: Request) -> Response:
        # Collecting asks the actors for gauges: keep it off the event loop.
        body = await asyncio.to_thread(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
    ]
    if webhook is not None:
        routes.append(Route(webhook_path, webhook.receive, methods=["POST"]))
    return Starlette(routes=routes)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: Voicio drains on SIGTERM itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    """Serve the app on the running event loop until stopped."""

    def __init__(self, app: Starlette, port: int) -> None:
        config = uvicorn.Config(
            app,
            host="0.0.0.0",  # noqa: S104 - a service in a container listens on all
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self._server = _Server(config)
        self._task: asyncio.Task[Any] | None = None

    @property
    def port(self) -> int:
        """The port listened on (the one asked for, or the one given for 0)."""
        servers = getattr(self._server, "servers", [])
        for server in servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return self._server.config.port

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(), name="http-server")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it (a taken port)
                raise RuntimeError("the HTTP server stopped while starting")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
