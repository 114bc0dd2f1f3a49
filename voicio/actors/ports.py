"""What actors need from Telegram, without knowing about Telegram libraries.

The Telegram edge (voicio.bot) implements TelegramPort; tests can implement
it with a few lines. Errors come back as DeliveryError subclasses whose type
says what to do next.
"""

from __future__ import annotations

from typing import Protocol

Button = tuple[str, str]
"""A button's label and its callback data (at most 64 bytes)."""

Keyboard = list[list[Button]]


class DeliveryError(Exception):
    """Telegram did not do what was asked."""

    retryable = False
    reason = "telegram"


class ChatUnreachable(DeliveryError):
    """The bot was blocked, removed from the chat, or the chat is gone."""


class ChatMoved(DeliveryError):
    """A group became a supergroup with a new chat id."""

    def __init__(self, message: str, new_chat_id: int) -> None:
        super().__init__(message)
        self.new_chat_id = new_chat_id


class MessageGone(DeliveryError):
    """The message to edit, delete or reply to no longer exists."""


class NotModified(DeliveryError):
    """An edit asked for exactly what the message already shows."""


class FileTooBig(DeliveryError):
    """Telegram will not hand out a file this large to a bot."""

    reason = "too_big"


class DeliveryRejected(DeliveryError):
    """Telegram refused the request as malformed; retrying won't help."""


class DeliveryFailed(DeliveryError):
    """A network error or timeout: it may be worth another try.

    `maybe_delivered` is set for timeouts, after which Telegram may have
    acted on the request even though no answer arrived.
    """

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        maybe_delivered: bool,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.maybe_delivered = maybe_delivered
        # Flood control: Telegram's own word on how long to wait.
        self.retry_after = retry_after


class TelegramPort(Protocol):
    """The Telegram operations actors use."""

    async def react(self, chat_id: int, message_id: int, emoji: str | None) -> None:
        """Set (or with None clear) the bot's reaction on a message."""

    async def send_text(
        self,
        chat_id: int,
        html: str,
        *,
        reply_to: int | None = None,
        buttons: Keyboard | None = None,
    ) -> int:
        """Send an HTML message and return its message id."""

    async def edit_text(
        self,
        chat_id: int,
        message_id: int,
        html: str,
        *,
        buttons: Keyboard | None = None,
    ) -> None:
        """Replace a bot message's text and buttons."""

    async def edit_buttons(
        self, chat_id: int, message_id: int, buttons: Keyboard | None
    ) -> None:
        """Replace (or with None remove) a bot message's buttons."""

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
        """Send a file and return the message id."""

    async def answer_callback(
        self, callback_id: str, text: str | None = None, *, alert: bool = False
    ) -> None:
        """Stop a button's spinner, optionally showing a notice or an alert."""

    async def download(self, file_id: str, max_bytes: int) -> bytes:
        """Fetch a file's bytes; raise FileTooBig above `max_bytes`."""

    async def member_status(self, chat_id: int, user_id: int) -> str:
        """Return a user's status in a chat: creator, administrator, member,
        restricted, left or kicked."""
