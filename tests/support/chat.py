"""Small helpers for driving a chat through the Telegram fake."""

from __future__ import annotations

from tests.fakes.telegram_api import FakeChat, FakeTelegram, FakeUser, SentMessage


def private(user: FakeUser) -> FakeChat:
    return FakeChat(user.id, "private")


def button_data(message: SentMessage, label: str) -> str:
    """Return the callback data of the button whose label contains `label`."""
    for row in message.buttons:
        for text, data in row:
            if label in text and data is not None:
                return data
    raise AssertionError(f"no button {label!r} in {message.buttons}")


def press(
    telegram: FakeTelegram,
    chat: FakeChat,
    user: FakeUser,
    message: SentMessage,
    label: str,
) -> str:
    """Press the button labelled `label` under `message`; return its data."""
    data = button_data(message, label)
    telegram.press_button(chat, user, message.message_id, data)
    return data


def current(telegram: FakeTelegram, message: SentMessage) -> SentMessage:
    """The message as it is now (after edits)."""
    for candidate in telegram.bot_messages(message.chat_id, include_deleted=True):
        if candidate.message_id == message.message_id:
            return candidate
    raise AssertionError(f"message {message.message_id} is gone")


def has_button(message: SentMessage, label: str) -> bool:
    return any(label in text for row in message.buttons for text, _ in row)
