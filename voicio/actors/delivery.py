"""Send rendered replies through the TelegramPort, with Telegram's failure rules.

- Flood control (RetryAfter) and network errors before anything reached
  Telegram are retried after the wait Telegram asked for, or with backoff.
- A send that timed out may have been delivered: it is not retried, since a
  second try could post the reply twice. Edits are idempotent and retried.
- An edit whose message is gone is sent as a new message instead.
- "Message is not modified" is not an error (the port swallows it).
- Chat-level failures (blocked, migrated) go up to the ChatActor.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TypeVar

from voicio import render
from voicio.actors.ports import DeliveryFailed, Keyboard, MessageGone, TelegramPort

logger = logging.getLogger(__name__)

T = TypeVar("T")

MAX_ATTEMPTS = 4
MAX_WAIT_SECONDS = 60.0


class MaybeDelivered(Exception):
    """A send timed out; Telegram may or may not have posted it."""


async def with_retries(
    call: Callable[[], Awaitable[T]], *, what: str, idempotent: bool
) -> T:
    """Run one Telegram call, retrying what is safe to retry."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return await call()
        except DeliveryFailed as exc:
            if exc.maybe_delivered and not idempotent:
                raise MaybeDelivered(f"{what}: {exc}") from exc
            if attempt == MAX_ATTEMPTS:
                raise
            wait = _wait(exc, attempt)
            logger.warning(
                "%s failed (%s); attempt %d, retrying in %.1fs",
                what,
                exc,
                attempt,
                wait,
            )
            await asyncio.sleep(wait)
    raise AssertionError("unreachable")


def _wait(error: DeliveryFailed, attempt: int) -> float:
    if error.retry_after is not None:
        return min(float(error.retry_after), MAX_WAIT_SECONDS)
    base = min(0.5 * 2.0 ** (attempt - 1), 8.0)
    return base + random.uniform(0, base / 2)  # noqa: S311 - jitter, not crypto


async def deliver(
    port: TelegramPort,
    chat_id: int,
    rendered: render.Rendered,
    *,
    reply_to: int | None = None,
    buttons: Keyboard | None = None,
) -> list[int]:
    """Send a rendered reply and return the message ids; buttons go last."""
    ids: list[int] = []
    last = len(rendered.parts) - 1
    for index, part in enumerate(rendered.parts):
        target = reply_to if index == 0 else None
        call: Callable[[], Awaitable[int]]
        if index == 0 and rendered.document is not None:
            name, data = rendered.document
            call = partial(
                port.send_document,
                chat_id,
                name,
                data,
                caption_html=part,
                reply_to=target,
                buttons=buttons,
            )
            what = f"sendDocument to chat {chat_id}"
        else:
            keyboard = buttons if index == last and rendered.document is None else None
            call = partial(
                port.send_text, chat_id, part, reply_to=target, buttons=keyboard
            )
            what = f"sendMessage to chat {chat_id}"
        ids.append(await with_retries(call, what=what, idempotent=False))
    return ids


async def replace_message(
    port: TelegramPort,
    chat_id: int,
    message_id: int,
    rendered: render.Rendered,
    buttons: Keyboard | None,
) -> list[int]:
    """Edit a message to show `rendered`; overflow goes out as new messages.

    Returns the ids of the messages that now show it, first the edited one.
    """
    head = rendered.parts[0]
    tail: render.Rendered | None = None
    if rendered.document is not None:
        tail = rendered  # the file follows the edited message, under its caption
    elif len(rendered.parts) > 1:
        tail = render.Rendered(rendered.parts[1:])
    only = tail is None
    try:
        await with_retries(
            lambda: port.edit_text(
                chat_id, message_id, head, buttons=buttons if only else None
            ),
            what=f"editMessageText in chat {chat_id}",
            idempotent=True,
        )
    except MessageGone:
        # Deleted or too old to edit: show it as a new message instead.
        return await deliver(port, chat_id, rendered, buttons=buttons)
    if tail is None:
        return [message_id]
    more = await deliver(port, chat_id, tail, reply_to=message_id, buttons=buttons)
    return [message_id, *more]
