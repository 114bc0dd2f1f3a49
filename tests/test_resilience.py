"""Nothing lost: crashes, restarts, storms, Telegram's refusals and bad input."""

from __future__ import annotations

import collections
import itertools
import re

import psycopg
import pytest

from tests.conftest import BotFactory
from tests.fakes.gemini_api import FakeGemini
from tests.fakes.telegram_api import FakeChat, FakeTelegram, FakeUser
from tests.support.chat import current, has_button, press, private
from tests.support.database import PrivatePostgres
from tests.support.voices import english_notes, recording

pytestmark = pytest.mark.slow

USERS = [FakeUser(300 + i, f"User{i}") for i in range(6)]
GROUP = FakeChat(-4001, "group", title="Ops")

_unique = itertools.count(1)


def unique_audio(name: str) -> bytes:
    """A fixture with a trailing tag, so each note is its own file for the fake."""
    return recording(name).data + next(_unique).to_bytes(4, "big")


def answers_per_note(telegram: FakeTelegram, chat_id: int) -> collections.Counter[int]:
    """How many replies each voice message in the chat got."""
    return collections.Counter(
        m.reply_to_message_id
        for m in telegram.bot_messages(chat_id)
        if m.reply_to_message_id
    )


def send_notes(telegram: FakeTelegram, count: int) -> dict[int, list[int]]:
    """Send `count` notes spread over three chats; return voice ids per chat."""
    sent: dict[int, list[int]] = collections.defaultdict(list)
    for index, note in enumerate(english_notes()[:count]):
        user = USERS[index % 3]
        sent[user.id].append(
            telegram.send_voice(
                private(user), user, unique_audio(note.name), duration=3
            )
        )
    return sent


def wait_answered(
    telegram: FakeTelegram, sent: dict[int, list[int]], timeout: float
) -> None:
    def done() -> bool:
        return all(
            set(ids) <= set(answers_per_note(telegram, chat))
            for chat, ids in sent.items()
        )

    telegram.wait_until(done, timeout, what="every note answered")


# -- crashes, deploys, database restarts ---------------------------------------------


def test_kill_9_with_ten_notes_in_flight_then_restart_answers_each_once(
    start_bot: BotFactory, telegram: FakeTelegram, gemini: FakeGemini
) -> None:
    gemini.set_latency(3.0)
    first = start_bot(env={"GEMINI_CONCURRENCY": "16"})
    sent = send_notes(telegram, 10)
    gemini.wait_until(lambda: len(gemini.requests) >= 10, what="ten notes at Gemini")

    first.kill()
    gemini.set_latency(0.05)
    second = start_bot()

    wait_answered(telegram, sent, timeout=30)
    for chat, ids in sent.items():
        counts = answers_per_note(telegram, chat)
        assert [counts[i] for i in ids] == [1] * len(ids), "a note was answered twice"
        replies = [m for m in telegram.bot_messages(chat) if m.reply_to_message_id]
        assert [m.reply_to_message_id for m in replies] == ids  # and in order
    second.wait_for_log(r"Replaying unfinished updates of 3 chats")


def test_sigterm_lets_notes_in_flight_finish(
    start_bot: BotFactory, telegram: FakeTelegram, gemini: FakeGemini
) -> None:
    gemini.set_latency(1.5)
    bot = start_bot(env={"SHUTDOWN_GRACE_SECONDS": "20"})
    sent = send_notes(telegram, 3)
    gemini.wait_until(lambda: len(gemini.requests) == 3, what="notes at Gemini")

    code = bot.stop()

    assert code == 0
    wait_answered(telegram, sent, timeout=1)  # already there when it exited
    assert "unfinished notes will be replayed" not in bot.log


def test_sigterm_with_too_short_a_grace_leaves_the_rest_to_the_next_start(
    start_bot: BotFactory, telegram: FakeTelegram, gemini: FakeGemini
) -> None:
    gemini.set_latency(6.0)
    bot = start_bot(env={"SHUTDOWN_GRACE_SECONDS": "0.5"})
    sent = send_notes(telegram, 2)
    gemini.wait_until(lambda: len(gemini.requests) == 2, what="notes at Gemini")

    assert bot.stop() == 0
    assert "unfinished notes will be replayed" in bot.log
    gemini.set_latency(0.0)
    start_bot()

    wait_answered(telegram, sent, timeout=20)


def test_a_postgres_outage_mid_run_loses_no_note(
    start_bot: BotFactory,
    telegram: FakeTelegram,
    gemini: FakeGemini,
    private_postgres: tuple[PrivatePostgres, str],
) -> None:
    server, url = private_postgres
    gemini.set_latency(1.0)
    bot = start_bot(database_url=url)
    before = send_notes(telegram, 6)
    gemini.wait_until(lambda: len(gemini.requests) >= 3, what="work under way")

    server.take_down()
    during = {}
    for index, note in enumerate(english_notes()[12:15]):
        user = USERS[3 + index]
        during[user.id] = [
            telegram.send_voice(
                private(user), user, unique_audio(note.name), duration=3
            )
        ]
    bot.wait_for_log(r"Could not store|Database unavailable", timeout=20)
    server.bring_up()

    sent = {**before, **during}
    wait_answered(telegram, sent, timeout=60)
    for chat, ids in sent.items():
        assert [answers_per_note(telegram, chat)[i] for i in ids] == [1] * len(ids)
    bot.wait_for_log(r"Database reachable again")
    with psycopg.connect(url) as conn:
        stored = conn.execute("SELECT count(*) FROM voice_notes").fetchone()
    assert stored == (9,)


# -- Gemini storms ---------------------------------------------------------------------


def test_a_storm_of_429s_and_503s_is_weathered_without_early_retries(
    start_bot: BotFactory, telegram: FakeTelegram, gemini: FakeGemini
) -> None:
    gemini.set_fault_rates(rate_limit=0.5, server_error=0.1, retry_delay="1s", seed=7)
    bot = start_bot(env={"GEMINI_CONCURRENCY": "6", "GEMINI_MAX_ATTEMPTS": "8"})

    sent = send_notes(telegram, 12)

    wait_answered(telegram, sent, timeout=120)
    for chat in sent:
        assert all("Brief summary" in m.text for m in telegram.bot_messages(chat))
    by_audio: dict[str | None, list] = collections.defaultdict(list)
    for request in gemini.requests:
        by_audio[request.audio_sha256].append(request)
    for attempts in by_audio.values():
        for earlier, later in itertools.pairwise(attempts):
            if earlier.status == 429:
                assert earlier.finished is not None
                assert later.started - earlier.finished >= 1.0
    statuses = collections.Counter(r.status for r in gemini.requests)
    print(f"storm: {dict(statuses)} over {len(gemini.requests)} requests")
    assert statuses[429] > 0
    assert statuses[503] > 0
    bot.wait_for_log(r"gemini_429=[1-9]")


def test_the_pool_backs_off_when_gemini_limits_concurrency(
    start_bot: BotFactory, telegram: FakeTelegram, gemini: FakeGemini
) -> None:
    gemini.set_concurrency_limit(2, retry_delay="1s")
    gemini.set_latency(0.3)
    start_bot(env={"GEMINI_CONCURRENCY": "8"})

    sent = send_notes(telegram, 24)

    wait_answered(telegram, sent, timeout=120)
    requests = sorted(gemini.requests, key=lambda r: r.started)
    half = len(requests) // 2
    early = sum(r.status == 429 for r in requests[:half])
    late = sum(r.status == 429 for r in requests[half:])
    print(f"429s: {early} in the first {half} requests, {late} in the last {half}")
    assert early > late


def test_a_spent_daily_quota_fails_fast_and_says_when(
    start_bot: BotFactory, telegram: FakeTelegram, gemini: FakeGemini
) -> None:
    gemini.set_daily_quota_exhausted(True)
    bot = start_bot()
    first = send_notes(telegram, 1)
    wait_answered(telegram, first, timeout=20)

    rest = send_notes(telegram, 3)

    wait_answered(telegram, rest, timeout=20)
    texts = [m.text for chat in rest for m in telegram.bot_messages(chat)]
    assert all("resets at midnight Pacific time, in about" in t for t in texts)
    assert len(gemini.requests) == 1  # the others failed without a request
    bot.wait_for_log(r"ERROR .*daily quota is spent")


# -- Telegram's refusals --------------------------------------------------------------


def test_flood_control_is_waited_out_and_sends_once(
    start_bot: BotFactory, telegram: FakeTelegram
) -> None:
    telegram.fail("sendMessage", status=429, parameters={"retry_after": 1})
    start_bot()

    telegram.send_voice(
        private(USERS[0]), USERS[0], unique_audio("voice/en_01.ogg"), duration=3
    )

    reply = telegram.wait_for_messages(USERS[0].id, 1, timeout=15)
    assert len(reply) == 1
    first, second = telegram.requests("sendMessage")[:2]
    assert first.status == 429
    assert second.time - first.time >= 1.0


def test_a_blocked_chat_is_dropped_and_comes_back_when_the_user_writes(
    start_bot: BotFactory, telegram: FakeTelegram, database_url: str
) -> None:
    user = USERS[1]
    telegram.block(user.id)
    bot = start_bot()

    telegram.send_voice(
        private(user), user, unique_audio("voice/en_02.ogg"), duration=3
    )
    bot.wait_for_log(rf"Chat {user.id} is unreachable")
    telegram.unblock(user.id)
    telegram.send_voice(
        private(user), user, unique_audio("voice/en_03.ogg"), duration=3
    )

    reply = telegram.wait_for_messages(user.id, 1)[0]
    assert recording("voice/en_03.ogg").text in reply.text
    assert bot.stop() == 0
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT unreachable_at FROM chats WHERE id = %s", (user.id,)
        ).fetchone()
    assert row == (None,)


def test_an_edit_of_a_vanished_message_is_sent_anew(
    start_bot: BotFactory, telegram: FakeTelegram
) -> None:
    user = USERS[2]
    start_bot()
    telegram.send_voice(
        private(user), user, unique_audio("voice/en_04.ogg"), duration=3
    )
    reply = telegram.wait_for_messages(user.id, 1)[0]
    press(telegram, private(user), user, reply, "Mode")
    telegram.wait_until(
        lambda: has_button(current(telegram, reply), "Bullet points"), what="picker"
    )
    telegram.fail(
        "editMessageText",
        status=400,
        description="Bad Request: message to edit not found",
    )

    press(telegram, private(user), user, current(telegram, reply), "Bullet points")

    fresh = telegram.wait_for_messages(user.id, 2)[1]
    assert "Bullet points" in fresh.text
    assert has_button(fresh, "Mode")


def test_a_reply_whose_connection_broke_is_not_sent_twice(
    start_bot: BotFactory, telegram: FakeTelegram
) -> None:
    user = USERS[3]
    telegram.drop_connection("sendMessage")
    bot = start_bot()

    telegram.send_voice(
        private(user), user, unique_audio("voice/en_05.ogg"), duration=3
    )

    bot.wait_for_log(r"may have posted it|not sent again", timeout=15)
    assert len(telegram.bot_messages(user.id)) == 1
    assert len(telegram.requests("sendMessage")) == 1


def test_a_group_that_became_a_supergroup_keeps_its_notes(
    start_bot: BotFactory, telegram: FakeTelegram, database_url: str
) -> None:
    user = USERS[4]
    bot = start_bot()
    telegram.send_voice(GROUP, user, unique_audio("voice/en_06.ogg"), duration=3)
    telegram.wait_for_messages(GROUP.id, 1)
    telegram.migrate_chat(GROUP.id, -1009004001)

    telegram.send_text(GROUP, user, "/history")

    moved = telegram.wait_for_messages(-1009004001, 1)[0]
    assert "History · 1 / 1" in moved.text
    bot.wait_for_log(r"became chat -1009004001")
    assert bot.stop() == 0
    with psycopg.connect(database_url) as conn:
        chats = conn.execute("SELECT chat_id FROM voice_notes").fetchall()
    assert chats == [(-1009004001,)]


# -- bad input -------------------------------------------------------------------------


def log_has(bot_log: str, pattern: str) -> bool:
    return re.search(pattern, bot_log) is not None


def test_bad_input_gets_an_answer_or_a_documented_ignore(
    start_bot: BotFactory, telegram: FakeTelegram, gemini: FakeGemini
) -> None:
    user = USERS[5]
    chat = private(user)
    bot = start_bot()
    cases: list[tuple[str, str]] = []

    def expect(send: int, text: str) -> None:
        cases.append((str(send), text))

    expect(
        telegram.send_voice(
            chat, user, recording("bad/not_audio.ogg").data, duration=2
        ),
        "couldn't read this audio",
    )
    expect(telegram.send_voice(chat, user, b"", duration=1), "couldn't read this audio")
    expect(
        telegram.send_document(
            chat,
            user,
            recording("bad/garbage.bin").data,
            file_name="a.mp3",
            mime_type="audio/mpeg",
        ),
        "couldn't read this audio",
    )
    expect(
        telegram.send_voice(
            chat, user, recording("voice/silence.ogg").data, duration=3
        ),
        "couldn't hear any speech",
    )
    expect(
        telegram.send_voice(chat, user, unique_audio("voice/en_07.ogg"), duration=0),
        recording("voice/en_07.ogg").text,
    )
    expect(telegram.send_sticker(chat, user), "Send me a voice note")
    expect(telegram.send_photo(chat, user), "Send me a voice note")
    expect(telegram.send_text(chat, user, "word " * 300), "not text")
    expect(
        telegram.send_document(
            chat, user, b"%PDF-1.4", file_name="a.pdf", mime_type="application/pdf"
        ),
        "doesn't look like audio",
    )
    telegram.send_sticker(GROUP, user)  # in a group: ignored, by design
    last = telegram.send_voice(chat, user, unique_audio("voice/en_08.ogg"), duration=3)

    replies = telegram.wait_for_messages(user.id, len(cases) + 1, timeout=30)
    by_note = {m.reply_to_message_id: m.text for m in replies}
    for note_id, text in cases:
        assert text in by_note[int(note_id)], (note_id, by_note.get(int(note_id)))
    assert recording("voice/en_08.ogg").text in by_note[last]
    assert telegram.bot_messages(GROUP.id) == []
    assert log_has(bot.log, r"WARNING .*failed \(unreadable\)")
    assert bot.running


def test_the_actor_system_survives_a_crashing_chat(
    start_bot: BotFactory, telegram: FakeTelegram
) -> None:
    user = USERS[0]
    bot = start_bot()
    # An update the reader cannot make sense of: a callback without data on a
    # message id that was never sent.
    telegram.push_update(
        {
            "callback_query": {
                "id": "cb-1",
                "from": {"id": user.id, "is_bot": False, "first_name": "U"},
                "chat_instance": "x",
                "message": {
                    "message_id": 999,
                    "date": 0,
                    "chat": {"id": user.id, "type": "private"},
                },
            }
        }
    )

    telegram.send_voice(
        private(user), user, unique_audio("voice/en_09.ogg"), duration=3
    )

    reply = telegram.wait_for_messages(user.id, 1)[0]
    assert recording("voice/en_09.ogg").text in reply.text
    assert bot.running
