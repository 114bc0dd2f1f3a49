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
    shown_mode: Mode | None = None


@dataclass(frozen=True)
class NotePrep:
    """What is already known about a note arriving (or arriving again)."""

    transcript: str | None
    language: str | None
    summary: str | None
    reply_ids: list[int]
    from_cache: bool


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


def load_chat_state(
    conn: Conn, chat_id: int
) -> tuple[ChatSettings | None, list[PendingUpdate]]:
    """Return a chat's settings and unfinished updates in one round trip."""
    # Loading the unfinished updates counts as one more attempt at each: an
    # update that crashes its actor every time runs out of attempts.
    row = conn.execute(
        "WITH pending AS (UPDATE updates SET attempts = attempts + 1"
        "  WHERE chat_id = %(id)s AND done_at IS NULL"
        "  RETURNING update_id, payload, attempts)"
        " SELECT c.id, c.language, c.summary_language, c.default_mode, c.timezone,"
        " c.paused, c.group_policy, (SELECT coalesce(json_agg(json_build_array("
        "  p.update_id, p.payload, p.attempts) ORDER BY p.update_id), '[]')"
        "  FROM pending p)"
        " FROM (SELECT 1) AS one LEFT JOIN chats c ON c.id = %(id)s",
        {"id": chat_id},
    ).fetchone()
    assert row is not None
    pending = [PendingUpdate(*item) for item in row[7]]
    if row[0] is None:
        return None, pending
    return _settings(row[1:7]), pending


def chats_with_pending_updates(conn: Conn, older_than: float = 0.0) -> list[int]:
    """Return chats with an update unfinished for over `older_than` seconds."""
    rows = conn.execute(
        "SELECT chat_id FROM updates WHERE done_at IS NULL AND chat_id IS NOT NULL"
        " AND received_at < now() - make_interval(secs => %s)"
        " GROUP BY chat_id ORDER BY min(update_id)",
        (older_than,),
    ).fetchall()
    return [row[0] for row in rows]


def pending_updates(conn: Conn, chat_id: int) -> list[PendingUpdate]:
    """Return a chat's unfinished updates, oldest first (no attempt counted)."""
    rows = conn.execute(
        "SELECT update_id, payload, attempts FROM updates"
        " WHERE chat_id = %s AND done_at IS NULL ORDER BY update_id",
        (chat_id,),
    ).fetchall()
    return [PendingUpdate(*row) for row in rows]


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
    return None if row is None else _settings(row)


def _settings(row: tuple[Any, ...]) -> ChatSettings:
    language, summary_language, mode, timezone, paused, policy = row
    return ChatSettings(
        language=language,
        summary_language=summary_language,
        default_mode=Mode(mode),
        timezone=timezone,
        paused=paused,
        group_policy=GroupPolicy(policy),
    )


_UPSERT_CHAT = (
    "INSERT INTO chats (id, type, title) VALUES (%(chat)s, %(type)s, %(title)s)"
    " ON CONFLICT (id) DO UPDATE SET type = excluded.type,"
    " title = excluded.title, updated_at = now()"
    " WHERE (chats.type, chats.title) IS DISTINCT FROM"
    " (excluded.type, excluded.title)"
)


def save_chat(conn: Conn, chat: ChatRef, sender: Person | None = None) -> None:
    """Create or refresh a chat row, and its sender's user row, in one statement."""
    params: dict[str, Any] = {"chat": chat.id, "type": chat.type, "title": chat.title}
    if sender is None:
        conn.execute(_UPSERT_CHAT, params)
        return
    params.update(
        user=sender.id,
        first=sender.first_name,
        last=sender.last_name,
        username=sender.username,
        lang=sender.language_code,
    )
    conn.execute(
        f"WITH chat AS ({_UPSERT_CHAT} RETURNING 1) "  # noqa: S608 - constants only
        "INSERT INTO users (id, first_name, last_name, username, language_code)"
        " VALUES (%(user)s, %(first)s, %(last)s, %(username)s, %(lang)s)"
        " ON CONFLICT (id) DO UPDATE SET first_name = excluded.first_name,"
        " last_name = excluded.last_name, username = excluded.username,"
        " language_code = excluded.language_code, updated_at = now()"
        " WHERE (users.first_name, users.last_name, users.username,"
        " users.language_code) IS DISTINCT FROM (excluded.first_name,"
        " excluded.last_name, excluded.username, excluded.language_code)",
        params,
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


# -- voice notes ---------------------------------------------------------------


def load_note(conn: Conn, chat_id: int, message_id: int) -> StoredNote | None:
    """Return one of a chat's notes, or None if the chat has no such note."""
    row = conn.execute(
        "SELECT n.sender_id, n.kind, n.file_id, n.file_unique_id, n.duration,"
        " n.file_size, n.mime_type, n.file_name, n.forward_origin, n.sent_at, n.mode,"
        " n.status, n.transcript, n.language,"
        " concat_ws(' ', u.first_name, u.last_name), n.shown_mode"
        " FROM voice_notes n LEFT JOIN users u ON u.id = n.sender_id"
        " WHERE n.chat_id = %s AND n.message_id = %s",
        (chat_id, message_id),
    ).fetchone()
    if row is None:
        return None
    (sender_id, kind, file_id, unique_id, duration, size, mime, name) = row[:8]
    forward_origin, sent_at, mode, status, transcript, language, sender, shown = row[8:]
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
        shown_mode=Mode(shown) if shown else None,
    )


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
    # One statement: the note's transcript and usage, then its summary (whose
    # tokens were billed to the note: the summary rode along).
    conn.execute(
        "WITH note AS (UPDATE voice_notes SET status = 'done',"  # noqa: S608 - constants
        " transcript = %(text)s,"
        " language = %(language)s, model = %(model)s, audio_tokens = %(audio)s,"
        " text_tokens = %(text_tokens)s, output_tokens = %(output)s,"
        " thought_tokens = %(thought)s, error = NULL, transcribed_at = now()"
        " WHERE chat_id = %(chat)s AND message_id = %(msg)s RETURNING 1)"
        f" {_UPSERT_SUMMARY}",
        {
            "text": result.transcript,
            "language": result.language,
            "model": result.model,
            "audio": usage.audio_tokens,
            "text_tokens": usage.text_tokens,
            "output": usage.output_tokens,
            "thought": usage.thought_tokens,
            **_summary_params(
                chat_id,
                message_id,
                mode,
                summary_language,
                Summary(result.summary, Usage(), result.model),
            ),
        },
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
    conn.execute(
        _UPSERT_SUMMARY,
        _summary_params(chat_id, message_id, mode, summary_language, summary),
    )


_UPSERT_SUMMARY = (
    "INSERT INTO summaries (chat_id, message_id, mode, language, text, model,"
    " audio_tokens, text_tokens, output_tokens, thought_tokens)"
    " VALUES (%(chat)s, %(msg)s, %(mode)s, %(lang)s, %(summary)s, %(s_model)s,"
    " %(s_audio)s, %(s_text)s, %(s_output)s, %(s_thought)s)"
    " ON CONFLICT (chat_id, message_id, mode) DO UPDATE SET"
    " language = excluded.language, text = excluded.text,"
    " model = excluded.model, audio_tokens = excluded.audio_tokens,"
    " text_tokens = excluded.text_tokens, output_tokens = excluded.output_tokens,"
    " thought_tokens = excluded.thought_tokens, created_at = now()"
)


def _summary_params(
    chat_id: int, message_id: int, mode: Mode, summary_language: str, summary: Summary
) -> dict[str, Any]:
    usage = summary.usage
    return {
        "chat": chat_id,
        "msg": message_id,
        "mode": mode.value,
        "lang": summary_language,
        "summary": summary.text,
        "s_model": summary.model,
        "s_audio": usage.audio_tokens,
        "s_text": usage.text_tokens,
        "s_output": usage.output_tokens,
        "s_thought": usage.thought_tokens,
    }


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


def prepare_note(conn: Conn, note: NewNote, summary_language: str) -> NotePrep:
    """Record an arriving note and return what is known about it, in one trip.

    Known means: this note's own transcript and summary (a replay after a
    restart) with the replies already sent, or else a transcript of the same
    file made for another note (a forwarded copy).
    """
    audio = note.audio
    row = conn.execute(
        "WITH recorded AS ("
        " INSERT INTO voice_notes (chat_id, message_id, update_id, sender_id, kind,"
        " file_id, file_unique_id, duration, file_size, mime_type, file_name,"
        " forward_origin, sent_at, mode) VALUES (%(chat)s, %(msg)s, %(update)s,"
        " %(sender)s, %(kind)s, %(file_id)s, %(unique)s, %(duration)s, %(size)s,"
        " %(mime)s, %(name)s, %(origin)s, %(sent_at)s, %(mode)s)"
        " ON CONFLICT (chat_id, message_id) DO NOTHING),"
        " known AS ("
        "  SELECT n.transcript, n.language, s.text, false AS from_cache, 0 AS rank,"
        "   n.transcribed_at FROM voice_notes n LEFT JOIN summaries s"
        "   ON s.chat_id = n.chat_id AND s.message_id = n.message_id"
        "   AND s.mode = %(mode)s AND s.language = %(lang)s"
        "   WHERE n.chat_id = %(chat)s AND n.message_id = %(msg)s"
        "   AND n.transcript IS NOT NULL"
        "  UNION ALL"
        "  SELECT n.transcript, n.language, s.text, true, 1, n.transcribed_at"
        "   FROM voice_notes n LEFT JOIN summaries s"
        "   ON s.chat_id = n.chat_id AND s.message_id = n.message_id"
        "   AND s.mode = %(mode)s AND s.language = %(lang)s"
        "   WHERE n.file_unique_id = %(unique)s AND n.transcript IS NOT NULL)"
        " SELECT k.transcript, k.language, k.text, k.from_cache,"
        " ARRAY(SELECT message_id FROM replies WHERE chat_id = %(chat)s"
        "  AND note_message_id = %(msg)s ORDER BY part)"
        " FROM (SELECT 1) AS one LEFT JOIN LATERAL (SELECT * FROM known"
        "  ORDER BY rank, text IS NULL, transcribed_at DESC LIMIT 1) k ON true",
        {
            "chat": note.chat_id,
            "msg": note.message_id,
            "update": note.update_id,
            "sender": note.sender_id,
            "kind": audio.kind.value,
            "file_id": audio.file_id,
            "unique": audio.file_unique_id,
            "duration": audio.duration,
            "size": audio.file_size,
            "mime": audio.mime_type,
            "name": audio.file_name,
            "origin": note.forward_origin,
            "sent_at": note.sent_at,
            "mode": note.mode.value,
            "lang": summary_language,
        },
    ).fetchone()
    assert row is not None
    transcript, language, summary, from_cache, replies = row
    return NotePrep(transcript, language, summary, list(replies), bool(from_cache))


def finish_note(
    conn: Conn,
    chat_id: int,
    message_id: int,
    update_id: int,
    reply_ids: list[int],
    outcome: str,
) -> None:
    """Record the replies sent for a note and close its update, in one statement."""
    conn.execute(
        "WITH sent AS (INSERT INTO replies (chat_id, note_message_id, part, message_id)"
        " SELECT %(chat)s, %(msg)s, part - 1, id"
        " FROM unnest(%(ids)s::bigint[]) WITH ORDINALITY AS r(id, part)"
        " ON CONFLICT (chat_id, note_message_id, part)"
        " DO UPDATE SET message_id = excluded.message_id)"
        " UPDATE updates SET done_at = now(), outcome = %(outcome)s"
        " WHERE update_id = %(update)s AND done_at IS NULL",
        {
            "chat": chat_id,
            "msg": message_id,
            "ids": reply_ids,
            "update": update_id,
            "outcome": outcome,
        },
    )


# -- history, deletion, retention ------------------------------------------------


@dataclass(frozen=True)
class HistoryEntry:
    """One note of a chat's history, with the summary it shows."""

    note: StoredNote
    summary: str | None
    total: int


def history_entry(
    conn: Conn, chat_id: int, position: int, summary_language: str
) -> HistoryEntry | None:
    """Return the chat's `position`-th newest transcribed note, or None."""
    row = conn.execute(
        "SELECT n.message_id, count(*) OVER () FROM voice_notes n"
        " WHERE n.chat_id = %s AND n.transcript IS NOT NULL"
        " ORDER BY n.sent_at DESC, n.message_id DESC OFFSET %s LIMIT 1",
        (chat_id, position),
    ).fetchone()
    if row is None:
        return None
    note = load_note(conn, chat_id, row[0])
    assert note is not None
    mode = note.shown_mode or note.mode
    summary = load_summary(conn, chat_id, note.message_id, mode, summary_language)
    if summary is None:
        summary = load_any_summary(conn, chat_id, note.message_id, mode)
    return HistoryEntry(note, summary, int(row[1]))


def load_any_summary(
    conn: Conn, chat_id: int, message_id: int, mode: Mode
) -> str | None:
    """Return a summary of the note in `mode`, whatever its language."""
    row = conn.execute(
        "SELECT text FROM summaries WHERE chat_id = %s AND message_id = %s"
        " AND mode = %s ORDER BY created_at DESC LIMIT 1",
        (chat_id, message_id, mode.value),
    ).fetchone()
    return None if row is None else str(row[0])


def set_shown_mode(conn: Conn, chat_id: int, message_id: int, mode: Mode) -> None:
    """Remember which mode the note's summary message shows now."""
    conn.execute(
        "UPDATE voice_notes SET shown_mode = %s WHERE chat_id = %s AND message_id = %s",
        (mode.value, chat_id, message_id),
    )


def delete_note(conn: Conn, chat_id: int, message_id: int) -> bool:
    """Delete one note with its summaries; False if the chat has no such note."""
    cur = conn.execute(
        "DELETE FROM voice_notes WHERE chat_id = %s AND message_id = %s",
        (chat_id, message_id),
    )
    return cur.rowcount == 1


def forget_chat(conn: Conn, chat_id: int) -> int:
    """Delete a chat's notes and finished updates; return how many notes."""
    cur = conn.execute("DELETE FROM voice_notes WHERE chat_id = %s", (chat_id,))
    conn.execute(
        "DELETE FROM updates WHERE chat_id = %s AND done_at IS NOT NULL", (chat_id,)
    )
    return cur.rowcount


def purge_expired(conn: Conn, retention_days: int) -> tuple[int, int]:
    """Delete notes and finished updates older than the retention period."""
    notes = conn.execute(
        "DELETE FROM voice_notes WHERE created_at < now() - make_interval(days => %s)",
        (retention_days,),
    ).rowcount
    updates = conn.execute(
        "DELETE FROM updates WHERE done_at < now() - make_interval(days => %s)",
        (min(retention_days, 7),),
    ).rowcount
    return notes, updates


def migrate_chat(conn: Conn, old_id: int, new_id: int) -> None:
    """Move a group's data to the supergroup it became.

    Notes keep their old message ids (they name messages of the old group);
    if the new chat already has a note with the same id, the old one is
    dropped, since Telegram will never show it again anyway.
    """
    conn.execute(
        "INSERT INTO chats (id, type, title, language, summary_language,"
        " default_mode, timezone, paused, group_policy)"
        " SELECT %s, 'supergroup', title, language, summary_language, default_mode,"
        " timezone, paused, group_policy FROM chats WHERE id = %s"
        " ON CONFLICT (id) DO NOTHING",
        (new_id, old_id),
    )
    conn.execute(
        "DELETE FROM voice_notes o WHERE o.chat_id = %s AND EXISTS ("
        " SELECT 1 FROM voice_notes n WHERE n.chat_id = %s"
        " AND n.message_id = o.message_id)",
        (old_id, new_id),
    )
    conn.execute(
        "UPDATE voice_notes SET chat_id = %s WHERE chat_id = %s", (new_id, old_id)
    )
    conn.execute("UPDATE updates SET chat_id = %s WHERE chat_id = %s", (new_id, old_id))
    conn.execute("DELETE FROM chats WHERE id = %s", (old_id,))


def set_unreachable(conn: Conn, chat_id: int, unreachable: bool) -> None:
    """Record that the bot can (not) write to a chat."""
    conn.execute(
        "UPDATE chats SET unreachable_at = CASE WHEN %s THEN now() END"
        " WHERE id = %s AND (unreachable_at IS NULL) = %s",
        (unreachable, chat_id, unreachable),
    )
