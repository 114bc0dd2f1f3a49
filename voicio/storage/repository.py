"""Voicio's SQL, one function per question or change.

Every function takes an open connection and leaves transaction control to the
caller (the StorageActor commits in batches). Writes are idempotent: running
one twice, as a replay after a crash does, changes nothing the second time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from voicio.domain import (
    AudioRef,
    ChatRef,
    ChatSettings,
    GroupPolicy,
    MediaKind,
    Mode,
    Person,
    Summary,
    Transcription,
    Usage,
)

Conn = psycopg.Connection[Any]


@dataclass(frozen=True)
class PendingUpdate:
    """An update stored in the inbox and not yet finished."""

    update_id: int
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class NewNote:
    """A voice note as it arrives, before any model has heard it."""

    chat_id: int
    message_id: int
    update_id: int
    sender_id: int | None
    audio: AudioRef
    forward_origin: str | None
    sent_at: datetime
    mode: Mode


@dataclass(frozen=True)
class StoredNote:
    """A voice note as the database knows it."""

    chat_id: int
    message_id: int
    sender_id: int | None
    audio: AudioRef
    forward_origin: str | None
    sent_at: datetime
    mode: Mode
    status: str
    transcript: str | None
    language: str | None
    sender_name: str | None = None


@dataclass(frozen=True)
class CachedTranscript:
    """A transcript of the same audio made earlier, maybe with a summary."""

    transcript: str
    language: str
    summary: str | None


# -- inbox ---------------------------------------------------------------------


def store_update(
    conn: Conn, update_id: int, chat_id: int | None, payload: dict[str, Any]
) -> bool:
    """Store an update; return False if it was stored before."""
    cur = conn.execute(
        "INSERT INTO updates (update_id, chat_id, payload) VALUES (%s, %s, %s)"
        " ON CONFLICT (update_id) DO NOTHING",
        (update_id, chat_id, Jsonb(payload)),
    )
    return cur.rowcount == 1


def pending_updates(conn: Conn, chat_id: int) -> list[PendingUpdate]:
    """Return a chat's unfinished updates, oldest first."""
    rows = conn.execute(
        "SELECT update_id, payload, attempts FROM updates"
        " WHERE chat_id = %s AND done_at IS NULL ORDER BY update_id",
        (chat_id,),
    ).fetchall()
    return [PendingUpdate(*row) for row in rows]


def chats_with_pending_updates(conn: Conn) -> list[int]:
    """Return every chat that has unfinished updates, by its oldest one."""
    rows = conn.execute(
        "SELECT chat_id FROM updates WHERE done_at IS NULL AND chat_id IS NOT NULL"
        " GROUP BY chat_id ORDER BY min(update_id)"
    ).fetchall()
    return [row[0] for row in rows]


def count_attempt(conn: Conn, update_id: int) -> int:
    """Record one more attempt at an update and return the new count."""
    row = conn.execute(
        "UPDATE updates SET attempts = attempts + 1 WHERE update_id = %s"
        " RETURNING attempts",
        (update_id,),
    ).fetchone()
    return int(row[0]) if row else 0


def finish_update(conn: Conn, update_id: int, outcome: str) -> None:
    """Mark an update as handled, so no replay touches it again."""
    conn.execute(
        "UPDATE updates SET done_at = now(), outcome = %s"
        " WHERE update_id = %s AND done_at IS NULL",
        (outcome, update_id),
    )


# -- chats and users -----------------------------------------------------------


def load_settings(conn: Conn, chat_id: int) -> ChatSettings | None:
    """Return a chat's settings, or None for a chat never seen."""
    row = conn.execute(
        "SELECT language, summary_language, default_mode, timezone, paused,"
        " group_policy FROM chats WHERE id = %s",
        (chat_id,),
    ).fetchone()
    if row is None:
        return None
    language, summary_language, mode, timezone, paused, policy = row
    return ChatSettings(
        language=language,
        summary_language=summary_language,
        default_mode=Mode(mode),
        timezone=timezone,
        paused=paused,
        group_policy=GroupPolicy(policy),
    )


def save_chat(conn: Conn, chat: ChatRef) -> None:
    """Create a chat row or refresh its type and title."""
    conn.execute(
        "INSERT INTO chats (id, type, title) VALUES (%s, %s, %s)"
        " ON CONFLICT (id) DO UPDATE SET type = excluded.type,"
        " title = excluded.title, updated_at = now()"
        " WHERE (chats.type, chats.title) IS DISTINCT FROM"
        " (excluded.type, excluded.title)",
        (chat.id, chat.type, chat.title),
    )


def save_settings(conn: Conn, chat_id: int, settings: ChatSettings) -> None:
    """Replace a chat's settings."""
    conn.execute(
        "UPDATE chats SET language = %s, summary_language = %s, default_mode = %s,"
        " timezone = %s, paused = %s, group_policy = %s, updated_at = now()"
        " WHERE id = %s",
        (
            settings.language,
            settings.summary_language,
            settings.default_mode.value,
            settings.timezone,
            settings.paused,
            settings.group_policy.value,
            chat_id,
        ),
    )


def save_user(conn: Conn, person: Person) -> None:
    """Create a user row or refresh its names and language."""
    conn.execute(
        "INSERT INTO users (id, first_name, last_name, username, language_code)"
        " VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (id) DO UPDATE SET first_name = excluded.first_name,"
        " last_name = excluded.last_name, username = excluded.username,"
        " language_code = excluded.language_code, updated_at = now()"
        " WHERE (users.first_name, users.last_name, users.username,"
        " users.language_code) IS DISTINCT FROM (excluded.first_name,"
        " excluded.last_name, excluded.username, excluded.language_code)",
        (
            person.id,
            person.first_name,
            person.last_name,
            person.username,
            person.language_code,
        ),
    )


# -- voice notes ---------------------------------------------------------------


def record_note(conn: Conn, note: NewNote) -> None:
    """Store a note as it arrives; a replayed arrival changes nothing."""
    audio = note.audio
    conn.execute(
        "INSERT INTO voice_notes (chat_id, message_id, update_id, sender_id, kind,"
        " file_id, file_unique_id, duration, file_size, mime_type, file_name,"
        " forward_origin, sent_at, mode)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (chat_id, message_id) DO NOTHING",
        (
            note.chat_id,
            note.message_id,
            note.update_id,
            note.sender_id,
            audio.kind.value,
            audio.file_id,
            audio.file_unique_id,
            audio.duration,
            audio.file_size,
            audio.mime_type,
            audio.file_name,
            note.forward_origin,
            note.sent_at,
            note.mode.value,
        ),
    )


def load_note(conn: Conn, chat_id: int, message_id: int) -> StoredNote | None:
    """Return one of a chat's notes, or None if the chat has no such note."""
    row = conn.execute(
        "SELECT n.sender_id, n.kind, n.file_id, n.file_unique_id, n.duration,"
        " n.file_size, n.mime_type, n.file_name, n.forward_origin, n.sent_at, n.mode,"
        " n.status, n.transcript, n.language,"
        " concat_ws(' ', u.first_name, u.last_name)"
        " FROM voice_notes n LEFT JOIN users u ON u.id = n.sender_id"
        " WHERE n.chat_id = %s AND n.message_id = %s",
        (chat_id, message_id),
    ).fetchone()
    if row is None:
        return None
    (sender_id, kind, file_id, unique_id, duration, size, mime, name) = row[:8]
    forward_origin, sent_at, mode, status, transcript, language, sender = row[8:]
    audio = AudioRef(MediaKind(kind), file_id, unique_id, duration, size, mime, name)
    return StoredNote(
        chat_id=chat_id,
        message_id=message_id,
        sender_id=sender_id,
        audio=audio,
        forward_origin=forward_origin,
        sent_at=sent_at,
        mode=Mode(mode),
        status=status,
        transcript=transcript,
        language=language,
        sender_name=sender or None,
    )


def cached_transcript(
    conn: Conn, file_unique_id: str, mode: Mode, summary_language: str
) -> CachedTranscript | None:
    """Find an earlier transcript of the same file, with a matching summary."""
    row = conn.execute(
        "SELECT n.transcript, n.language, s.text FROM voice_notes n"
        " LEFT JOIN summaries s ON s.chat_id = n.chat_id"
        "  AND s.message_id = n.message_id AND s.mode = %s AND s.language = %s"
        " WHERE n.file_unique_id = %s AND n.transcript IS NOT NULL"
        " ORDER BY s.text IS NULL, n.transcribed_at DESC LIMIT 1",
        (mode.value, summary_language, file_unique_id),
    ).fetchone()
    if row is None:
        return None
    return CachedTranscript(transcript=row[0], language=row[1], summary=row[2])


def save_transcription(
    conn: Conn,
    chat_id: int,
    message_id: int,
    summary_language: str,
    result: Transcription,
    mode: Mode,
) -> None:
    """Store what the model heard in a note and the summary it wrote."""
    usage = result.usage
    conn.execute(
        "UPDATE voice_notes SET status = 'done', transcript = %s, language = %s,"
        " model = %s, audio_tokens = %s, text_tokens = %s, output_tokens = %s,"
        " thought_tokens = %s, error = NULL, transcribed_at = now()"
        " WHERE chat_id = %s AND message_id = %s",
        (
            result.transcript,
            result.language,
            result.model,
            usage.audio_tokens,
            usage.text_tokens,
            usage.output_tokens,
            usage.thought_tokens,
            chat_id,
            message_id,
        ),
    )
    save_summary(
        conn,
        chat_id,
        message_id,
        mode,
        summary_language,
        # The usage was billed to the note itself; the summary rode along.
        Summary(result.summary, Usage(), result.model),
    )


def save_summary(
    conn: Conn,
    chat_id: int,
    message_id: int,
    mode: Mode,
    summary_language: str,
    summary: Summary,
) -> None:
    """Store (or replace) a note's summary in one mode."""
    usage = summary.usage
    conn.execute(
        "INSERT INTO summaries (chat_id, message_id, mode, language, text, model,"
        " audio_tokens, text_tokens, output_tokens, thought_tokens)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (chat_id, message_id, mode) DO UPDATE SET"
        " language = excluded.language, text = excluded.text,"
        " model = excluded.model, audio_tokens = excluded.audio_tokens,"
        " text_tokens = excluded.text_tokens, output_tokens = excluded.output_tokens,"
        " thought_tokens = excluded.thought_tokens, created_at = now()",
        (
            chat_id,
            message_id,
            mode.value,
            summary_language,
            summary.text,
            summary.model,
            usage.audio_tokens,
            usage.text_tokens,
            usage.output_tokens,
            usage.thought_tokens,
        ),
    )


def load_summary(
    conn: Conn, chat_id: int, message_id: int, mode: Mode, summary_language: str
) -> str | None:
    """Return a stored summary in `mode` and `summary_language`, if any."""
    row = conn.execute(
        "SELECT text FROM summaries WHERE chat_id = %s AND message_id = %s"
        " AND mode = %s AND language = %s",
        (chat_id, message_id, mode.value, summary_language),
    ).fetchone()
    return None if row is None else str(row[0])


def fail_note(conn: Conn, chat_id: int, message_id: int, error: str) -> None:
    """Record that a note could not be transcribed, and why."""
    conn.execute(
        "UPDATE voice_notes SET status = 'failed', error = %s"
        " WHERE chat_id = %s AND message_id = %s AND status <> 'done'",
        (error, chat_id, message_id),
    )


def record_reply(
    conn: Conn, chat_id: int, note_message_id: int, part: int, message_id: int
) -> None:
    """Remember a bot message sent for a note."""
    conn.execute(
        "INSERT INTO replies (chat_id, note_message_id, part, message_id)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (chat_id, note_message_id, part)"
        " DO UPDATE SET message_id = excluded.message_id",
        (chat_id, note_message_id, part, message_id),
    )


def load_replies(conn: Conn, chat_id: int, note_message_id: int) -> list[int]:
    """Return the message ids of the bot messages sent for a note, in order."""
    rows = conn.execute(
        "SELECT message_id FROM replies WHERE chat_id = %s AND note_message_id = %s"
        " ORDER BY part",
        (chat_id, note_message_id),
    ).fetchall()
    return [int(row[0]) for row in rows]
