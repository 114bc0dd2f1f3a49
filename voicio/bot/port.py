"""TelegramPort on python-telegram-bot: what actors ask, done over the Bot API."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    LinkPreviewOptions,
    ReactionTypeEmoji,
    ReplyParameters,
)
from telegram import error as tg
from telegram.constants import ParseMode

from voicio.actors.ports import (
    ChatMoved,
    ChatUnreachable,
    DeliveryError,
    DeliveryFailed,
    DeliveryRejected,
    FileTooBig,
    Keyboard,
    MessageGone,
    NotModified,
)
from voicio.actors.stats import Stats

logger = logging.getLogger(__name__)

_NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
_GONE = (
    "message to edit not found",
    "message to delete not found",
    "message to be replied not found",
    "message can't be edited",
)
_UNREACHABLE = (
    "chat not found",
    "bot was kicked",
    "not enough rights",
    "have no rights",
)


@asynccontextmanager
async def translated_errors(stats: Stats | None, what: str) -> AsyncIterator[None]:
    """Re-raise PTB's errors as the port's DeliveryError family, and count them."""
    try:
        yield
    except tg.TelegramError as exc:
        if stats is not None:
            stats.telegram_error(type(exc).__name__)
        raise translate(what, exc) from exc


def translate(what: str, exc: tg.TelegramError) -> DeliveryError:
    """Map one of PTB's errors to what the actors should do about it."""
    # Order matters: BadRequest and TimedOut are NetworkErrors too.
    if isinstance(exc, tg.Forbidden):
        return ChatUnreachable(f"{what}: {exc.message}")
    if isinstance(exc, tg.ChatMigrated):
        return ChatMoved(f"{what}: chat migrated", exc.new_chat_id)
    if isinstance(exc, tg.RetryAfter):
        return DeliveryFailed(
            f"{what}: flood control ({exc})",
            maybe_delivered=False,
            retry_after=_seconds(exc.retry_after),
        )
    if isinstance(exc, tg.BadRequest):
        return _bad_request(what, exc)
    if isinstance(exc, tg.TimedOut):
        return DeliveryFailed(f"{what}: timed out", maybe_delivered=True)
    if isinstance(exc, tg.NetworkError):
        # Only a connection that never opened is sure not to have delivered;
        # one that broke after the request went out may have.
        unsent = isinstance(exc.__cause__, aiohttp.ClientConnectorError)
        return DeliveryFailed(f"{what}: {exc.message}", maybe_delivered=not unsent)
    return DeliveryRejected(f"{what}: {exc.message}")


def _seconds(value: object) -> float:
    # PTB 22 gives an int or a timedelta, depending on PTB_TIMEDELTA.
    total = getattr(value, "total_seconds", None)
    return float(total()) if callable(total) else float(value)  # type: ignore[arg-type]


def _bad_request(what: str, exc: tg.BadRequest) -> DeliveryError:
    text = exc.message.lower()
    if "message is not modified" in text:
        return NotModified(f"{what}: not modified")
    if any(marker in text for marker in _GONE):
        return MessageGone(f"{what}: {exc.message}")
    if "file is too big" in text:
        return FileTooBig(f"{what}: {exc.message}")
    if any(marker in text for marker in _UNREACHABLE):
        return ChatUnreachable(f"{what}: {exc.message}")
    return DeliveryRejected(f"{what}: {exc.message}")


def _markup(buttons: Keyboard | None) -> InlineKeyboardMarkup | None:
    if buttons is None:
        return None
    rows = [
        [InlineKeyboardButton(label, callback_data=data) for label, data in row]
        for row in buttons
    ]
    return InlineKeyboardMarkup(rows)


def _reply(reply_to: int | None) -> ReplyParameters | None:
    if reply_to is None:
        return None
    # A deleted voice message must not cost its owner the summary.
    return ReplyParameters(reply_to, allow_sending_without_reply=True)


class PtbPort:
    """The TelegramPort that actors use, implemented with a PTB Bot."""

    def __init__(self, bot: Bot, stats: Stats | None = None) -> None:
        self._bot = bot
        self._stats = stats

    async def react(self, chat_id: int, message_id: int, emoji: str | None) -> None:
        reaction = [ReactionTypeEmoji(emoji)] if emoji else []
        async with translated_errors(self._stats, "setMessageReaction"):
            await self._bot.set_message_reaction(chat_id, message_id, reaction)

    async def send_text(
        self,
        chat_id: int,
        html: str,
        *,
        reply_to: int | None = None,
        buttons: Keyboard | None = None,
    ) -> int:
        async with translated_errors(self._stats, "sendMessage"):
            message = await self._bot.send_message(
                chat_id,
                html,
                parse_mode=ParseMode.HTML,
                reply_parameters=_reply(reply_to),
                reply_markup=_markup(buttons),
                link_preview_options=_NO_PREVIEW,
            )
        return message.message_id

    async def edit_text(
        self,
        chat_id: int,
        message_id: int,
        html: str,
        *,
        buttons: Keyboard | None = None,
    ) -> None:
        try:
            async with translated_errors(self._stats, "editMessageText"):
                await self._bot.edit_message_text(
                    html,
                    chat_id=chat_id,
                    message_id=message_id,
                    parse_mode=ParseMode.HTML,
                    reply_markup=_markup(buttons),
                    link_preview_options=_NO_PREVIEW,
                )
        except NotModified:
            logger.debug("Chat %s message %s already shows that", chat_id, message_id)

    async def edit_buttons(
        self, chat_id: int, message_id: int, buttons: Keyboard | None
    ) -> None:
        try:
            async with translated_errors(self._stats, "editMessageReplyMarkup"):
                await self._bot.edit_message_reply_markup(
                    chat_id=chat_id,
                    message_id=message_id,
                    reply_markup=_markup(buttons),
                )
        except NotModified:
            logger.debug(
                "Chat %s message %s already has those buttons", chat_id, message_id
            )

    async def send_document(
        self,
        chat_id: int,
        file_name: str,
        data: bytes,
        *,
        caption_html: str | None = None,
        reply_to: int | None = None,
        buttons: Keyboard | None = None,
    ) -> int:
        async with translated_errors(self._stats, "sendDocument"):
            message = await self._bot.send_document(
                chat_id,
                InputFile(data, filename=file_name),
                caption=caption_html,
                parse_mode=ParseMode.HTML,
                reply_parameters=_reply(reply_to),
                reply_markup=_markup(buttons),
            )
        return message.message_id

    async def answer_callback(
        self, callback_id: str, text: str | None = None, *, alert: bool = False
    ) -> None:
        async with translated_errors(self._stats, "answerCallbackQuery"):
            await self._bot.answer_callback_query(callback_id, text, show_alert=alert)

    async def member_status(self, chat_id: int, user_id: int) -> str:
        async with translated_errors(self._stats, "getChatMember"):
            member = await self._bot.get_chat_member(chat_id, user_id)
        return str(member.status)

    async def download(self, file_id: str, max_bytes: int) -> bytes:
        async with translated_errors(self._stats, "getFile"):
            file = await self._bot.get_file(file_id)
        if file.file_size is not None and file.file_size > max_bytes:
            raise FileTooBig(f"getFile: {file.file_size} bytes")
        async with translated_errors(self._stats, "download"):
            data = await file.download_as_bytearray(read_timeout=60)
        return bytes(data)
