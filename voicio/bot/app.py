"""The Telegram edge: PTB receives updates and hands them to the actors."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from telegram import Bot, BotCommand, Update
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    ContextTypes,
    TypeHandler,
)

from voicio.actors.futures import CallbackFuture
from voicio.actors.storage import StorageClient
from voicio.bot.inbound import UpdateReader
from voicio.bot.transport import AiohttpRequest
from voicio.bot.updates import GatedRequest, PersistingUpdateQueue
from voicio.domain import Inbound
from voicio.i18n import DEFAULT_LANGUAGE, available_languages, translator

logger = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message", "callback_query"]

COMMANDS = (
    "start",
    "help",
    "mode",
    "history",
    "settings",
    "transcribe",
    "pause",
    "resume",
    "privacy",
    "forget",
)


async def register_commands(bot: Bot) -> None:
    """Publish the command menu in every language Voicio speaks."""
    for language in available_languages():
        t = translator(language)
        commands = [BotCommand(name, t(f"commands.{name}")) for name in COMMANDS]
        # English is also the menu for every language without a catalog.
        code = None if language == DEFAULT_LANGUAGE else language
        await bot.set_my_commands(commands, language_code=code)


PtbApplication = Application[Any, Any, Any, Any, Any, Any]


def build_application(
    *,
    token: str,
    base_url: str,
    base_file_url: str,
    update_queue: PersistingUpdateQueue,
    rate_limit: bool,
    max_rate: float = 30.0,
) -> PtbApplication:
    """Build PTB's Application; Voicio does all processing in its actors."""
    builder = (
        ApplicationBuilder()
        .token(token)
        .base_url(base_url)
        .base_file_url(base_file_url)
        .update_queue(update_queue)
        .request(AiohttpRequest(connections=64))
        # getUpdates long-polls on its own connection, and confirms the last
        # batch only once all of it is stored.
        .get_updates_request(GatedRequest(update_queue.wait_stored, connections=1))
    )
    if rate_limit:
        # Telegram's per-chat and per-group limits, with RetryAfter honoured.
        # `max_rate` is this instance's share of the bot's 30 messages/s.
        limiter = AIORateLimiter(overall_max_rate=max_rate, max_retries=3)
        # The builder's generic parameters do not follow a limiter swapped in
        # after construction; the types line up at run time.
        builder = builder.rate_limiter(limiter)  # type: ignore[arg-type]
    return builder.build()


class Edge:
    """Read each update and route it; nothing else happens on the event loop."""

    def __init__(
        self,
        reader: UpdateReader,
        route: Callable[[Inbound, CallbackFuture[bool] | None], None],
        storage: StorageClient,
        queue: PersistingUpdateQueue,
    ) -> None:
        self._reader = reader
        self._route = route
        self._storage = storage
        self._queue = queue

    def install(self, application: PtbApplication) -> None:
        application.add_handler(TypeHandler(Update, self.on_update))

    async def on_update(self, update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        stored = self._queue.take_outcome(update)
        try:
            event = self._reader.read(update)
        except Exception:
            logger.exception("Update %s could not be read; skipped", update.update_id)
            self._storage.finish_update(update.update_id, "unreadable")
            return
        if event is None:
            # For a redelivery of a finished update this changes nothing.
            self._storage.finish_update(update.update_id, "ignored")
            return
        self._route(event, stored)
