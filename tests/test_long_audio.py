"""A long note is split at silences, heard in parallel parts, merged, summarized."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.conftest import BotFactory
from tests.fakes.gemini_api import FakeGemini, Fault
from tests.fakes.telegram_api import FakeTelegram, FakeUser
from tests.support.chat import private
from tests.support.voices import looped_recording

pytestmark = pytest.mark.slow

DANA = FakeUser(501, "Dana")
TITLE = "A long story about the harbour."


def test_a_long_note_is_heard_in_parts_and_answered_once(
    start_bot: BotFactory,
    telegram: FakeTelegram,
    gemini: FakeGemini,
    database_url: str,
    tmp_path: Path,
) -> None:
    audio = looped_recording(tmp_path, 200, TITLE)
    bot = start_bot(env={"LONG_AUDIO_SECONDS": "60"})

    telegram.send_voice(private(DANA), DANA, audio, duration=200)

    reply = telegram.wait_for_messages(DANA.id, 1, timeout=60)[0]
    parts = [r for r in gemini.requests if r.has_audio]
    texts = [r for r in gemini.requests if not r.has_audio]
    assert len(parts) >= 3
    assert all(r.audio_size < len(audio) for r in parts)
    assert len(texts) == 1  # the summary, written from the merged text
    assert reply.text.count(TITLE) >= 3
    assert bot.stop() == 0
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT transcript, audio_tokens FROM voice_notes"
        ).fetchone()
    assert row is not None
    assert row[0].count(TITLE) == len(parts)
    assert row[1] > 0


def test_a_truncated_transcript_is_heard_again_in_parts(
    start_bot: BotFactory, telegram: FakeTelegram, gemini: FakeGemini, tmp_path: Path
) -> None:
    audio = looped_recording(tmp_path, 240, TITLE)
    gemini.script(Fault.truncated())
    start_bot()

    telegram.send_voice(private(DANA), DANA, audio, duration=240)

    reply = telegram.wait_for_messages(DANA.id, 1, timeout=60)[0]
    first, *rest = gemini.requests
    assert first.fault == "truncated"
    assert len([r for r in rest if r.has_audio]) >= 3
    assert TITLE in reply.text
