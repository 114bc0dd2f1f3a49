"""Voicio's SQL against a real PostgreSQL: migrations, inbox, notes, retention."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.support.database import DatabaseFactory, with_database
from voicio.domain import (
    AudioRef,
    ChatRef,
    ChatSettings,
    MediaKind,
    Mode,
    Person,
    Transcription,
    Usage,
)
from voicio.storage import repository as repo
from voicio.storage.migrate import apply_migrations, migrations_dir

CHAT = ChatRef(901, "private")
ALICE = Person(901, "Alice", language_code="en")


@pytest.fixture
def conn(database_url: str) -> Any:
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


def note(
    message_id: int, unique_id: str = "U1", chat_id: int = CHAT.id
) -> repo.NewNote:
    audio = AudioRef(MediaKind.VOICE, f"F{message_id}", unique_id, 3, 1000, "audio/ogg")
    return repo.NewNote(
        chat_id=chat_id,
        message_id=message_id,
        update_id=message_id,
        sender_id=ALICE.id,
        audio=audio,
        forward_origin=None,
        sent_at=datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
        mode=Mode.BRIEF,
    )


def transcribed(conn: Any, message_id: int, unique_id: str = "U1") -> None:
    repo.prepare_note(conn, note(message_id, unique_id), "same")
    heard = Transcription("Hello there.", "Greeting.", "en", Usage(96, 40, 12, 0), "m")
    repo.save_transcription(conn, CHAT.id, message_id, "same", heard, Mode.BRIEF)


def test_two_processes_migrating_at_once_apply_each_migration_once(
    databases: DatabaseFactory,
) -> None:
    name = f"voicio_{databases.run_id}_race"
    with psycopg.connect(databases.admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(databases.admin_url, name)
    results: list[list[str]] = []
    start = threading.Barrier(2)

    def migrate() -> None:
        start.wait()
        results.append(apply_migrations(url))

    threads = [threading.Thread(target=migrate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    versions = sorted(path.stem for path in migrations_dir().glob("*.sql"))
    assert sorted(results, key=len) == [[], versions]
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT version FROM schema_migrations ORDER BY 1"
        ).fetchall()
    assert [row[0] for row in rows] == versions
    with psycopg.connect(databases.admin_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))
        )


def test_an_update_is_stored_once_and_pending_until_finished(conn: Any) -> None:
    assert repo.store_update(conn, 10, CHAT.id, {"update_id": 10}) is True
    assert repo.store_update(conn, 10, CHAT.id, {"update_id": 10}) is False

    settings, pending = repo.load_chat_state(conn, CHAT.id)
    repo.finish_update(conn, 10, "done")

    assert settings is None
    assert [(p.update_id, p.attempts) for p in pending] == [(10, 1)]
    assert repo.load_chat_state(conn, CHAT.id)[1] == []
    assert repo.chats_with_pending_updates(conn) == []


def test_every_load_counts_an_attempt(conn: Any) -> None:
    repo.store_update(conn, 11, CHAT.id, {"update_id": 11})

    attempts = [repo.load_chat_state(conn, CHAT.id)[1][0].attempts for _ in range(3)]

    assert attempts == [1, 2, 3]


def test_a_forwarded_copy_finds_the_earlier_transcript(conn: Any) -> None:
    repo.save_chat(conn, CHAT, ALICE)
    transcribed(conn, 1, unique_id="SAME")

    copy = repo.prepare_note(conn, note(2, unique_id="SAME"), "same")
    other = repo.prepare_note(conn, note(3, unique_id="OTHER"), "same")

    assert (copy.transcript, copy.summary, copy.from_cache) == (
        "Hello there.",
        "Greeting.",
        True,
    )
    assert other.transcript is None


def test_a_replayed_note_knows_its_transcript_and_replies(conn: Any) -> None:
    repo.save_chat(conn, CHAT, ALICE)
    transcribed(conn, 1)
    repo.finish_note(conn, CHAT.id, 1, 1, [41, 42], "done")

    again = repo.prepare_note(conn, note(1), "same")

    assert (again.transcript, again.from_cache, again.reply_ids) == (
        "Hello there.",
        False,
        [41, 42],
    )


def test_settings_round_trip(conn: Any) -> None:
    repo.save_chat(conn, CHAT, ALICE)
    wanted = ChatSettings(
        language="ru", default_mode=Mode.BULLETS, timezone="Asia/Tokyo"
    )

    repo.save_settings(conn, CHAT.id, wanted)

    assert repo.load_settings(conn, CHAT.id) == wanted


def test_history_is_newest_first_and_deletion_is_per_chat(conn: Any) -> None:
    repo.save_chat(conn, CHAT, ALICE)
    repo.save_chat(conn, ChatRef(902, "private"))
    for message_id in (1, 2, 3):
        transcribed(conn, message_id)

    newest = repo.history_entry(conn, CHAT.id, 0, "same")
    deleted_elsewhere = repo.delete_note(conn, 902, 2)
    deleted_here = repo.delete_note(conn, CHAT.id, 2)

    assert newest is not None
    assert newest.total == 3
    assert newest.summary == "Greeting."
    assert (deleted_elsewhere, deleted_here) == (False, True)
    assert repo.history_entry(conn, CHAT.id, 0, "same").total == 2  # type: ignore[union-attr]


def test_retention_and_forgetting_delete_what_they_should(conn: Any) -> None:
    repo.save_chat(conn, CHAT, ALICE)
    for message_id in (1, 2, 3):
        transcribed(conn, message_id)
    conn.execute(
        "UPDATE voice_notes SET created_at = now() - interval '100 days'"
        " WHERE message_id = 1"
    )

    purged, _ = repo.purge_expired(conn, 90)
    forgotten = repo.forget_chat(conn, CHAT.id)

    assert (purged, forgotten) == (1, 2)
    assert conn.execute("SELECT count(*) FROM summaries").fetchone() == (0,)


def test_a_migrated_group_takes_its_notes_and_settings(conn: Any) -> None:
    group = ChatRef(-5001, "group", "Team")
    repo.save_chat(conn, group, ALICE)
    repo.save_settings(conn, group.id, ChatSettings(default_mode=Mode.DETAILED))
    repo.prepare_note(conn, note(7, chat_id=group.id), "same")

    repo.migrate_chat(conn, group.id, -1005001)
    repo.migrate_chat(conn, group.id, -1005001)  # both sides may do it: harmless

    assert repo.load_note(conn, -1005001, 7) is not None
    assert repo.load_note(conn, group.id, 7) is None
    moved = repo.load_settings(conn, -1005001)
    assert moved is not None
    assert moved.default_mode is Mode.DETAILED
