"""Read Telegram updates into Voicio's own events (voicio.domain)."""

from __future__ import annotations

import logging
from typing import Any

from telegram import (
    Audio,
    Document,
    MaybeInaccessibleMessage,
    Message,
    MessageOriginChannel,
    MessageOriginChat,
    MessageOriginHiddenUser,
    MessageOriginUser,
    Update,
    User,
    VideoNote,
    Voice,
)
from telegram.constants import MessageEntityType

from voicio.domain import (
    AudioIn,
    AudioRef,
    CallbackIn,
    ChatRef,
    CommandIn,
    Inbound,
    MediaKind,
    OtherIn,
    Person,
    RepliedAudio,
)

logger = logging.getLogger(__name__)

AUDIO_DOCUMENT_PREFIXES = ("audio/", "video/")


class UpdateReader:
    """Turn PTB Updates, or their stored JSON, into domain events."""

    def __init__(self, bot_username: str) -> None:
        self._username = bot_username.lower()

    def from_payload(self, payload: dict[str, Any]) -> Inbound | None:
        """Read an update stored as Bot API JSON."""
        return self.read(Update.de_json(payload, None))

    def read(self, update: Update) -> Inbound | None:
        """Return the event in `update`, or None if Voicio has nothing to do."""
        if update.callback_query is not None:
            return self._callback(update)
        message = update.message or update.channel_post
        if message is None:
            return None
        return self._message(update.update_id, message)

    def _callback(self, update: Update) -> Inbound | None:
        query = update.callback_query
        assert query is not None
        message = query.message
        if message is None:
            return None
        return CallbackIn(
            update_id=update.update_id,
            chat=_chat(message),
            sender=_person(query.from_user),
            date=message.date,
            callback_id=query.id,
            message_id=message.message_id,
            data=query.data or "",
        )

    def _message(self, update_id: int, message: Message) -> Inbound | None:
        base: dict[str, Any] = {
            "update_id": update_id,
            "chat": _chat(message),
            "sender": _person(message.from_user),
            "date": message.date,
        }
        audio = audio_of(message)
        if audio is not None:
            return AudioIn(
                **base,
                message_id=message.message_id,
                audio=audio,
                forward_origin=_origin(message),
            )
        command = self._command(message)
        replied = _replied_audio(message)
        if command is not None:
            name, args, addressed = command
            return CommandIn(
                **base,
                message_id=message.message_id,
                command=name,
                args=args,
                replied=replied,
                addressed_to_me=addressed,
            )
        return OtherIn(
            **base,
            message_id=message.message_id,
            what=_kind(message),
            text=message.text,
            mentions_me=self._mentions_me(message),
            replied=replied,
            migrated_to=message.migrate_to_chat_id,
            migrated_from=message.migrate_from_chat_id,
        )

    def _command(self, message: Message) -> tuple[str, str, bool] | None:
        text = message.text or ""
        entities = message.entities or ()
        first = entities[0] if entities else None
        if first is None or first.type != MessageEntityType.BOT_COMMAND or first.offset:
            return None
        word = text[1 : first.length]
        name, _, target = word.partition("@")
        addressed = not target or target.lower() == self._username
        return name.lower(), text[first.length :].strip(), addressed

    def _mentions_me(self, message: Message) -> bool:
        mention = f"@{self._username}"
        return mention in (message.text or "").lower()


def audio_of(message: Message) -> AudioRef | None:
    """Return the audio a message carries, if any."""
    voice: Voice | None = message.voice
    if voice is not None:
        return AudioRef(
            MediaKind.VOICE,
            voice.file_id,
            voice.file_unique_id,
            _seconds(voice.duration),
            voice.file_size,
            voice.mime_type or "audio/ogg",
        )
    audio: Audio | None = message.audio
    if audio is not None:
        return AudioRef(
            MediaKind.AUDIO,
            audio.file_id,
            audio.file_unique_id,
            _seconds(audio.duration),
            audio.file_size,
            audio.mime_type,
            audio.file_name,
        )
    note: VideoNote | None = message.video_note
    if note is not None:
        return AudioRef(
            MediaKind.VIDEO_NOTE,
            note.file_id,
            note.file_unique_id,
            _seconds(note.duration),
            note.file_size,
            "video/mp4",
        )
    document: Document | None = message.document
    mime = (document.mime_type or "") if document else ""
    if document is not None and mime.startswith(AUDIO_DOCUMENT_PREFIXES):
        return AudioRef(
            MediaKind.DOCUMENT,
            document.file_id,
            document.file_unique_id,
            0,
            document.file_size,
            mime,
            document.file_name,
        )
    return None


def _replied_audio(message: Message) -> RepliedAudio | None:
    replied = message.reply_to_message
    audio = audio_of(replied) if replied is not None else None
    if replied is None or audio is None:
        return None
    return RepliedAudio(
        message_id=replied.message_id,
        sender=_person(replied.from_user),
        date=replied.date,
        audio=audio,
        forward_origin=_origin(replied),
    )


def _seconds(duration: Any) -> int:
    # PTB 22 may give a timedelta or an int depending on its settings.
    if hasattr(duration, "total_seconds"):
        return int(duration.total_seconds())
    return int(duration or 0)


def _chat(message: MaybeInaccessibleMessage) -> ChatRef:
    chat = message.chat
    return ChatRef(chat.id, chat.type, chat.title)


def _person(user: User | None) -> Person | None:
    if user is None:
        return None
    return Person(
        id=user.id,
        first_name=user.first_name,
        last_name=user.last_name,
        username=user.username,
        language_code=user.language_code,
        is_bot=user.is_bot,
    )


def _origin(message: Message) -> str | None:
    origin = message.forward_origin
    if origin is None:
        return None
    if isinstance(origin, MessageOriginUser):
        return origin.sender_user.full_name
    if isinstance(origin, MessageOriginHiddenUser):
        return origin.sender_user_name
    if isinstance(origin, MessageOriginChat):
        return origin.sender_chat.title or origin.sender_chat.full_name
    if isinstance(origin, MessageOriginChannel):
        return origin.chat.title
    return None


def _kind(message: Message) -> str:
    for kind in (
        "text",
        "sticker",
        "photo",
        "video",
        "animation",
        "document",
        "contact",
    ):
        if getattr(message, kind, None):
            return kind
    return "other"
