"""The vocabulary every layer shares: modes, inbound events, model results.

Nothing here imports Telegram, pykka or the database, so actors, storage and
the Telegram edge can all depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Mode(StrEnum):
    """How a voice note is turned into text."""

    BRIEF = "brief"
    DETAILED = "detailed"
    BULLETS = "bullets"
    COMBINED = "combined"
    CLEAN = "clean"


class MediaKind(StrEnum):
    """The Telegram message type that carried the audio."""

    VOICE = "voice"
    AUDIO = "audio"
    VIDEO_NOTE = "video_note"
    DOCUMENT = "document"


class GroupPolicy(StrEnum):
    """Which voice notes a group chat wants transcribed."""

    ALL = "all"
    ON_REQUEST = "on_request"
    OFF = "off"


@dataclass(frozen=True)
class Person:
    """A Telegram user as far as Voicio cares."""

    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    is_bot: bool = False

    @property
    def display_name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p)


@dataclass(frozen=True)
class ChatRef:
    """The chat an event belongs to."""

    id: int
    type: str
    title: str | None = None

    @property
    def is_group(self) -> bool:
        return self.type in ("group", "supergroup")


@dataclass(frozen=True)
class Inbound:
    """One Telegram update, reduced to what Voicio acts on."""

    update_id: int
    chat: ChatRef
    sender: Person | None
    date: datetime


@dataclass(frozen=True)
class AudioRef:
    """Where a piece of audio lives in Telegram and what it claims to be."""

    kind: MediaKind
    file_id: str
    file_unique_id: str
    duration: int
    file_size: int | None
    mime_type: str | None
    file_name: str | None = None


@dataclass(frozen=True)
class AudioIn(Inbound):
    """A voice note, audio file, video note or audio document."""

    message_id: int
    audio: AudioRef
    forward_origin: str | None = None
    # Asked for explicitly (`/transcribe`, a mention): group policy aside.
    requested: bool = False


@dataclass(frozen=True)
class RepliedAudio:
    """The voice message a command or mention replies to."""

    message_id: int
    sender: Person | None
    date: datetime
    audio: AudioRef
    forward_origin: str | None = None


@dataclass(frozen=True)
class CommandIn(Inbound):
    """A bot command such as `/mode bullets`."""

    message_id: int
    command: str
    args: str
    replied: RepliedAudio | None = None
    addressed_to_me: bool = True


@dataclass(frozen=True)
class CallbackIn(Inbound):
    """A press on one of Voicio's inline buttons."""

    callback_id: str
    message_id: int | None
    data: str


@dataclass(frozen=True)
class OtherIn(Inbound):
    """A message Voicio does not transcribe (text, sticker, photo, ...)."""

    message_id: int | None
    what: str
    text: str | None = None
    mentions_me: bool = False
    replied: RepliedAudio | None = None
    # A group became a supergroup: the old group's last message names the new
    # id, the supergroup's first message names the old one.
    migrated_to: int | None = None
    migrated_from: int | None = None


@dataclass(frozen=True)
class Usage:
    """Token counts for one model request, split by what they bill as."""

    audio_tokens: int = 0
    text_tokens: int = 0
    output_tokens: int = 0
    thought_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.audio_tokens + other.audio_tokens,
            self.text_tokens + other.text_tokens,
            self.output_tokens + other.output_tokens,
            self.thought_tokens + other.thought_tokens,
        )


@dataclass(frozen=True)
class Transcription:
    """What the model heard in a note, and the summary it wrote."""

    transcript: str
    summary: str
    language: str
    usage: Usage = field(default_factory=Usage)
    model: str = ""


@dataclass(frozen=True)
class Summary:
    """A summary written from a stored transcript."""

    text: str
    usage: Usage = field(default_factory=Usage)
    model: str = ""


@dataclass(frozen=True)
class ChatSettings:
    """Per-chat preferences; defaults apply to a chat Voicio has not seen."""

    language: str | None = None
    summary_language: str = "same"
    default_mode: Mode = Mode.BRIEF
    timezone: str = "UTC"
    paused: bool = False
    group_policy: GroupPolicy = GroupPolicy.ALL
