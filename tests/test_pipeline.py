"""Voice note in, summary out: `voicio run` against the Telegram and Gemini fakes."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.conftest import BotFactory
from tests.fakes.gemini_api import FakeGemini, Fault
from tests.fakes.telegram_api import FakeChat, FakeTelegram, FakeUser, SentMessage
from tests.support.chat import current, has_button, press
from tests.support.voices import english_notes, recording

pytestmark = pytest.mark.slow

ALICE = FakeUser(101, "Alice")
BORIS = FakeUser(102, "Boris", language_code="ru")
CARMEN = FakeUser(103, "Carmen")


def private(user: FakeUser) -> FakeChat:
    return FakeChat(user.id, "private")


def replies_by_note(telegram: FakeTelegram, chat_id: int) -> list[SentMessage]:
    """The bot's answers to voice notes in a chat, in the order they were sent."""
    return [m for m in telegram.bot_messages(chat_id) if m.reply_to_message_id]


def test_twenty_notes_from_five_chats_come_back_in_order(
    start_bot: BotFactory, telegram: FakeTelegram, gemini: FakeGemini, database_url: str
) -> None:
    chats = [
        (private(ALICE), ALICE),
        (private(BORIS), BORIS),
        (private(CARMEN), CARMEN),
        (FakeChat(-2001, "group", title="Team"), ALICE),
        (FakeChat(-1002002, "supergroup", title="Family"), BORIS),
    ]
    notes = english_notes()[:20]
    gemini.set_latency(0.05)
    bot = start_bot()
    sent: dict[int, list[tuple[int, str]]] = {chat.id: [] for chat, _ in chats}

    # Interleave the chats, as a busy bot sees them.
    for index, note in enumerate(notes):
        chat, user = chats[index % len(chats)]
        message_id = telegram.send_voice(chat, user, note.data, duration=3)
        sent[chat.id].append((message_id, note.text))

    for chat, _ in chats:
        telegram.wait_for_messages(chat.id, 4, timeout=30)
    for chat, _ in chats:
        answers = replies_by_note(telegram, chat.id)
        assert [a.reply_to_message_id for a in answers] == [m for m, _ in sent[chat.id]]
        for answer, (_, text) in zip(answers, sent[chat.id], strict=True):
            assert text in answer.text
            assert "Brief summary" in answer.text or "Краткое резюме" in answer.text
    requests = gemini.requests
    assert len(requests) == 20
    assert all(r.has_audio and r.audio_mime == "audio/ogg" for r in requests)
    assert all(r.audio_size > 0 for r in requests)

    assert bot.stop() == 0  # a clean stop commits every pending write
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT count(*), count(transcript), sum(audio_tokens), min(output_tokens)"
            " FROM voice_notes"
        ).fetchone()
        summaries = conn.execute("SELECT count(*) FROM summaries").fetchone()
        unfinished = conn.execute(
            "SELECT count(*) FROM updates WHERE done_at IS NULL"
        ).fetchone()
    assert rows is not None
    assert rows[:2] == (20, 20)
    assert rows[2] > 0
    assert rows[3] > 0
    assert summaries == (20,)
    assert unfinished == (0,)


def test_a_forwarded_copy_costs_no_request(
    start_bot: BotFactory, telegram: FakeTelegram, gemini: FakeGemini
) -> None:
    note = recording("voice/en_05.ogg")
    ref = telegram.add_file(note.data)
    start_bot()
    telegram.send_voice(private(ALICE), ALICE, ref, duration=3)
    original = telegram.wait_for_messages(ALICE.id, 1)[0]
    assert len(gemini.requests) == 1

    telegram.send_voice(
        private(CARMEN),
        CARMEN,
        ref,
        duration=3,
        forward_origin={
            "type": "user",
            "date": 1,
            "sender_user": {"id": ALICE.id, "is_bot": False, "first_name": "Alice"},
        },
    )

    copy = telegram.wait_for_messages(CARMEN.id, 1)[0]
    assert note.text in copy.text
    assert "forwarded from Alice" in copy.text
    assert original.text.split("\n\n", 1)[1] == copy.text.split("\n\n", 1)[1]
    assert len(gemini.requests) == 1


def test_another_mode_is_one_text_only_request(
    start_bot: BotFactory, telegram: FakeTelegram, gemini: FakeGemini
) -> None:
    note = recording("voice/en_07.ogg")
    start_bot()
    telegram.send_voice(private(ALICE), ALICE, note.data, duration=3)
    reply = telegram.wait_for_messages(ALICE.id, 1)[0]

    press(telegram, private(ALICE), ALICE, reply, "Mode")
    telegram.wait_until(
        lambda: has_button(current(telegram, reply), "Detailed summary"),
        what="the mode picker",
    )
    press(telegram, private(ALICE), ALICE, current(telegram, reply), "Detailed summary")

    telegram.wait_until(
        lambda: "Detailed summary" in current(telegram, reply).text,
        what="the reply edited to the detailed mode",
    )
    edited = current(telegram, reply)
    assert "[detailed]" in edited.text
    assert note.text in edited.text
    assert has_button(edited, "Mode")
    requests = gemini.requests
    assert len(requests) == 2
    assert requests[1].has_audio is False
    assert requests[1].mode == "detailed"
    assert note.text in (requests[1].transcript or "")


def test_a_429_is_retried_after_the_delay_the_server_gave(
    start_bot: BotFactory, telegram: FakeTelegram, gemini: FakeGemini
) -> None:
    note = recording("voice/en_09.ogg")
    gemini.script(Fault.rate_limit("2s"))
    bot = start_bot()

    telegram.send_voice(private(ALICE), ALICE, note.data, duration=3)

    reply = telegram.wait_for_messages(ALICE.id, 1, timeout=20)[0]
    assert note.text in reply.text
    first, second = gemini.requests
    assert first.status == 429
    assert second.status == 200
    assert first.finished is not None
    assert second.started - first.finished >= 2.0
    bot.wait_for_log(r"gemini_retries=1 gemini_429=1", timeout=5)


def test_replies_keep_note_order_when_a_later_note_finishes_first(
    start_bot: BotFactory, telegram: FakeTelegram, gemini: FakeGemini
) -> None:
    first, second, third = english_notes()[10:13]
    gemini.script(Fault.hang(1.5))  # the first note's request is slow
    start_bot()

    ids = [
        telegram.send_voice(private(ALICE), ALICE, note.data, duration=3)
        for note in (first, second, third)
    ]

    answers = telegram.wait_for_messages(ALICE.id, 3, timeout=20)
    assert [a.reply_to_message_id for a in answers] == ids
    for answer, note in zip(answers, (first, second, third), strict=True):
        assert note.text in answer.text
    finished = sorted(gemini.requests, key=lambda r: r.finished or 0)
    assert finished[-1].fault == "hang"  # the first note really did finish last


def test_a_busy_chat_does_not_hold_up_another_chat(
    start_bot: BotFactory, telegram: FakeTelegram, gemini: FakeGemini
) -> None:
    busy, quiet = private(ALICE), private(BORIS)
    note = recording("voice/en_02.ogg")
    gemini.set_latency(0.2)
    start_bot(env={"GEMINI_CONCURRENCY": "2"})

    for _ in range(20):
        telegram.send_voice(busy, ALICE, note.data, duration=3)
    telegram.wait_until(lambda: len(gemini.requests) >= 2, what="the busy chat started")
    telegram.send_voice(quiet, BORIS, recording("voice/en_03.ogg").data, duration=3)

    telegram.wait_for_messages(quiet.id, 1, timeout=20)
    assert len(replies_by_note(telegram, busy.id)) < 8


def test_video_notes_and_audio_files_are_heard_too(
    start_bot: BotFactory, telegram: FakeTelegram, gemini: FakeGemini
) -> None:
    video = recording("video/en_video_note.mp4")
    song = recording("audio/en_song.mp3")
    memo = recording("audio/en_memo.m4a")
    start_bot()

    telegram.send_video_note(private(ALICE), ALICE, video.data, duration=3)
    telegram.wait_for_messages(ALICE.id, 1, timeout=20)
    telegram.send_audio(private(ALICE), ALICE, song.data, duration=3)
    telegram.wait_for_messages(ALICE.id, 2, timeout=20)
    telegram.send_document(
        private(ALICE), ALICE, memo.data, file_name="memo.m4a", mime_type="audio/mp4"
    )

    answers = telegram.wait_for_messages(ALICE.id, 3, timeout=20)
    for answer, item in zip(answers, (video, song, memo), strict=True):
        assert item.text in answer.text
    mimes = [r.audio_mime for r in gemini.requests]
    assert mimes == ["audio/ogg", "audio/mp3", "audio/ogg"]


def test_a_file_over_20_mb_is_refused_before_any_download(
    start_bot: BotFactory, telegram: FakeTelegram, gemini: FakeGemini
) -> None:
    start_bot()

    telegram.send_audio(
        private(ALICE), ALICE, b"ID3tiny", duration=3600, file_size=25 * 1024 * 1024
    )

    answer = telegram.wait_for_messages(ALICE.id, 1)[0]
    assert "larger than 20 MB" in answer.text
    assert telegram.requests("getFile") == []
    assert gemini.requests == []


def test_a_daily_quota_fails_fast_with_a_clear_message(
    start_bot: BotFactory, telegram: FakeTelegram, gemini: FakeGemini
) -> None:
    gemini.set_daily_quota_exhausted(True)
    start_bot()

    telegram.send_voice(
        private(BORIS), BORIS, recording("voice/ru_01.ogg").data, duration=3
    )

    answer = telegram.wait_for_messages(BORIS.id, 1)[0]
    assert "квота" in answer.text
    assert len(gemini.requests) == 1


def test_model_text_full_of_markup_reaches_the_user_intact(
    start_bot: BotFactory, telegram: FakeTelegram, gemini: FakeGemini
) -> None:
    nasty = "if a < b && c > d then `x` *bold* _it_ <b>tag</b> &amp; done. " * 160
    audio = recording("voice/en_20.ogg").data + b"\x00"  # a different file
    gemini.register_audio(audio, nasty.strip(), duration=3)
    start_bot()

    telegram.send_voice(private(ALICE), ALICE, audio, duration=3)

    parts = telegram.wait_for_messages(ALICE.id, 3)
    assert all(len(p.text) <= 4096 for p in parts)
    shown = " ".join(p.text for p in parts)
    assert "<b>tag</b> &amp; done." in shown
    assert shown.count("if a < b && c > d") == 160
    assert parts[-1].buttons
    assert not parts[0].buttons
    rejected = [r for r in telegram.requests() if r.status >= 400]
    assert rejected == []


def test_a_reply_too_long_for_four_messages_arrives_as_a_file(
    start_bot: BotFactory, telegram: FakeTelegram, gemini: FakeGemini
) -> None:
    transcript = "A sentence of the transcript that goes on. " * 300
    audio = recording("voice/en_21.ogg").data + b"\x00"
    gemini.register_audio(audio, transcript.strip(), duration=3)
    start_bot()
    telegram.send_text(private(ALICE), ALICE, "/mode combined")
    telegram.wait_for_messages(ALICE.id, 1)

    telegram.send_voice(private(ALICE), ALICE, audio, duration=3)

    reply = telegram.wait_for_messages(ALICE.id, 2)[1]
    assert reply.document is not None
    assert reply.document.file_name.endswith(".txt")
    body = reply.document.data.decode()
    assert body.count("A sentence of the transcript that goes on.") == 2 * 300


def test_without_database_url_an_embedded_postgres_keeps_the_data(
    start_bot: BotFactory, telegram: FakeTelegram, tmp_path: Path
) -> None:
    data_dir = tmp_path / "voicio-data"
    env = {"VOICIO_DATA_DIR": str(data_dir)}
    first = start_bot(env=env, database_url="")
    telegram.send_voice(
        private(ALICE), ALICE, recording("voice/en_22.ogg").data, duration=3
    )
    telegram.wait_for_messages(ALICE.id, 1)
    assert first.stop() == 0

    second = start_bot(env=env, database_url="")
    telegram.send_text(private(ALICE), ALICE, "/history")

    history = telegram.wait_for_messages(ALICE.id, 2, timeout=30)[1]
    assert recording("voice/en_22.ogg").text in history.text
    assert (data_dir / "postgres" / "PG_VERSION").exists()
    assert second.stop() == 0  # which also stops the embedded server
