"""The chat experience, end to end: what users see and press, in two languages."""

from __future__ import annotations

import pytest

from tests.conftest import BotFactory
from tests.fakes.gemini_api import FakeGemini
from tests.fakes.telegram_api import FakeChat, FakeTelegram, FakeUser, SentMessage
from tests.support.chat import current, has_button, press, private
from tests.support.voices import english_notes, recording

pytestmark = pytest.mark.slow

ALICE = FakeUser(201, "Alice", last_name="Liddell")
BORIS = FakeUser(202, "Борис", language_code="ru")
CAROL = FakeUser(203, "Carol")
GROUP = FakeChat(-3001, "group", title="Team")


def voice_reply(
    telegram: FakeTelegram, chat: FakeChat, user: FakeUser, name: str, index: int
) -> SentMessage:
    """Send a fixture voice note and return the bot's `index`-th message."""
    telegram.send_voice(chat, user, recording(name).data, duration=3)
    return telegram.wait_for_messages(chat.id, index + 1, timeout=15)[index]


def wait_text(
    telegram: FakeTelegram, message: SentMessage, text: str, what: str
) -> SentMessage:
    telegram.wait_until(lambda: text in current(telegram, message).text, what=what)
    return current(telegram, message)


def last_answer(telegram: FakeTelegram) -> tuple[str | None, bool]:
    answer = telegram.callback_answers()[-1]
    return answer.text, answer.show_alert


# -- a summary's buttons ------------------------------------------------------------


def test_a_summary_names_its_sender_time_and_mode_and_has_buttons(
    start_bot: BotFactory, telegram: FakeTelegram
) -> None:
    start_bot()

    reply = voice_reply(telegram, private(ALICE), ALICE, "voice/en_01.ogg", 0)

    first_line = reply.text.splitlines()[0]
    assert first_line.startswith("🎙 Alice Liddell · ")
    assert first_line.endswith(" · Brief summary")
    assert reply.entities[0]["type"] == "bold"
    for label in ("Mode", "Transcript", "Redo", "History", "Done"):
        assert has_button(reply, label)
    assert all(
        len(data.encode()) <= 64 for row in reply.buttons for _, data in row if data
    )


def test_transcript_button_sends_the_full_transcript(
    start_bot: BotFactory, telegram: FakeTelegram
) -> None:
    start_bot()
    reply = voice_reply(telegram, private(ALICE), ALICE, "voice/en_02.ogg", 0)

    press(telegram, private(ALICE), ALICE, reply, "Transcript")

    transcript = telegram.wait_for_messages(ALICE.id, 2)[1]
    assert transcript.text.startswith("Transcript")
    assert recording("voice/en_02.ogg").text in transcript.text
    assert transcript.reply_to_message_id == reply.message_id


def test_done_removes_the_buttons(
    start_bot: BotFactory, telegram: FakeTelegram
) -> None:
    start_bot()
    reply = voice_reply(telegram, private(ALICE), ALICE, "voice/en_03.ogg", 0)

    press(telegram, private(ALICE), ALICE, reply, "Done")

    telegram.wait_until(lambda: not current(telegram, reply).buttons, what="no buttons")
    assert recording("voice/en_03.ogg").text in current(telegram, reply).text


def test_combined_mode_puts_the_transcript_in_an_expandable_quote(
    start_bot: BotFactory, telegram: FakeTelegram
) -> None:
    start_bot()
    reply = voice_reply(telegram, private(ALICE), ALICE, "voice/en_04.ogg", 0)
    press(telegram, private(ALICE), ALICE, reply, "Mode")
    telegram.wait_until(
        lambda: has_button(current(telegram, reply), "Summary + transcript"),
        what="the picker",
    )

    press(
        telegram,
        private(ALICE),
        ALICE,
        current(telegram, reply),
        "Summary + transcript",
    )

    combined = wait_text(telegram, reply, "Summary + transcript", "the combined mode")
    quotes = [e for e in combined.entities if e["type"] == "expandable_blockquote"]
    assert len(quotes) == 1
    assert "\nTranscript\n" in combined.text


def test_redo_writes_a_fresh_summary_or_hears_the_audio_again(
    start_bot: BotFactory, telegram: FakeTelegram, gemini: FakeGemini
) -> None:
    start_bot()
    reply = voice_reply(telegram, private(ALICE), ALICE, "voice/en_05.ogg", 0)

    press(telegram, private(ALICE), ALICE, reply, "Redo")
    telegram.wait_until(
        lambda: has_button(current(telegram, reply), "Fresh summary"), what="redo menu"
    )
    press(telegram, private(ALICE), ALICE, current(telegram, reply), "Fresh summary")
    telegram.wait_until(lambda: len(gemini.requests) == 2, what="a text request")
    telegram.wait_until(
        lambda: has_button(current(telegram, reply), "Mode"), what="buttons back"
    )
    press(telegram, private(ALICE), ALICE, current(telegram, reply), "Redo")
    telegram.wait_until(
        lambda: has_button(current(telegram, reply), "again"), what="redo menu"
    )
    press(telegram, private(ALICE), ALICE, current(telegram, reply), "again")

    telegram.wait_until(lambda: len(gemini.requests) == 3, what="an audio request")
    first, fresh, heard = gemini.requests
    assert (first.has_audio, fresh.has_audio, heard.has_audio) == (True, False, True)
    assert len(telegram.requests("getFile")) == 2  # the audio was fetched again
    telegram.wait_until(
        lambda: has_button(current(telegram, reply), "Mode"), what="buttons back"
    )


# -- history -------------------------------------------------------------------------


def test_history_pages_newest_first_and_deletes_with_confirmation(
    start_bot: BotFactory, telegram: FakeTelegram
) -> None:
    start_bot()
    notes = english_notes()[5:8]
    for index, note in enumerate(notes):
        voice_reply(telegram, private(ALICE), ALICE, note.name, index)

    telegram.send_text(private(ALICE), ALICE, "/history")

    history = telegram.wait_for_messages(ALICE.id, 4)[3]
    assert "History · 1 / 3" in history.text
    assert notes[2].text in history.text
    assert not has_button(history, "Newer")
    press(telegram, private(ALICE), ALICE, history, "Older")
    page = wait_text(telegram, history, "2 / 3", "the second page")
    assert notes[1].text in page.text
    assert page.message_id == history.message_id

    press(telegram, private(ALICE), ALICE, page, "Delete")
    telegram.wait_until(
        lambda: has_button(current(telegram, history), "Yes, delete"),
        what="the confirmation",
    )
    press(telegram, private(ALICE), ALICE, current(telegram, history), "Yes, delete")

    after = wait_text(telegram, history, "/ 2", "history without the deleted note")
    assert notes[1].text not in after.text
    telegram.send_text(private(ALICE), ALICE, "/history")
    fresh = telegram.wait_for_messages(ALICE.id, 5)[4]
    assert "1 / 2" in fresh.text


def test_history_button_opens_history_and_an_empty_history_says_so(
    start_bot: BotFactory, telegram: FakeTelegram
) -> None:
    start_bot()
    telegram.send_text(private(CAROL), CAROL, "/history")
    empty = telegram.wait_for_messages(CAROL.id, 1)[0]
    assert "No notes yet" in empty.text

    reply = voice_reply(telegram, private(CAROL), CAROL, "voice/en_09.ogg", 1)
    press(telegram, private(CAROL), CAROL, reply, "History")

    history = telegram.wait_for_messages(CAROL.id, 3)[2]
    assert "History · 1 / 1" in history.text


# -- settings, commands, languages ------------------------------------------------


def test_settings_change_language_mode_and_time_zone_in_order(
    start_bot: BotFactory, telegram: FakeTelegram
) -> None:
    start_bot()
    telegram.send_text(private(ALICE), ALICE, "/settings")
    menu = telegram.wait_for_messages(ALICE.id, 1)[0]
    assert "Interface language: your Telegram language" in menu.text

    press(telegram, private(ALICE), ALICE, menu, "Time zone")
    telegram.wait_until(
        lambda: has_button(current(telegram, menu), "Asia/Tokyo"), what="time zones"
    )
    press(telegram, private(ALICE), ALICE, current(telegram, menu), "Asia/Tokyo")
    wait_text(telegram, menu, "Time zone: Asia/Tokyo", "the new time zone")
    press(telegram, private(ALICE), ALICE, current(telegram, menu), "Default mode")
    telegram.wait_until(
        lambda: has_button(current(telegram, menu), "Bullet points"), what="modes"
    )
    press(telegram, private(ALICE), ALICE, current(telegram, menu), "Bullet points")
    wait_text(telegram, menu, "Default mode: Bullet points", "the new mode")
    press(
        telegram, private(ALICE), ALICE, current(telegram, menu), "Interface language"
    )
    telegram.wait_until(
        lambda: has_button(current(telegram, menu), "Русский"), what="languages"
    )
    press(telegram, private(ALICE), ALICE, current(telegram, menu), "Русский")
    wait_text(telegram, menu, "Язык интерфейса: Русский", "the menu in Russian")

    reply = voice_reply(telegram, private(ALICE), ALICE, "voice/en_10.ogg", 1)
    assert "По пунктам" in reply.text.splitlines()[0]
    assert "[bullets]" in reply.text
    assert has_button(reply, "Расшифровка")


def test_a_russian_user_is_answered_in_russian(
    start_bot: BotFactory, telegram: FakeTelegram
) -> None:
    start_bot()

    telegram.send_text(private(BORIS), BORIS, "/start")
    reply = voice_reply(telegram, private(BORIS), BORIS, "voice/ru_02.ogg", 1)

    assert "Привет! Я Voicio." in telegram.bot_messages(BORIS.id)[0].text
    assert "Краткое резюме" in reply.text
    assert recording("voice/ru_02.ogg").text in reply.text


def test_commands_are_registered_in_each_language(
    start_bot: BotFactory, telegram: FakeTelegram
) -> None:
    start_bot()

    english = {c["command"]: c["description"] for c in telegram.commands()}
    russian = {
        c["command"]: c["description"] for c in telegram.commands(language_code="ru")
    }

    assert (
        set(english)
        == set(russian)
        >= {
            "start",
            "help",
            "mode",
            "history",
            "settings",
            "pause",
            "resume",
            "transcribe",
            "privacy",
            "forget",
        }
    )
    assert english["forget"] == "Delete this chat's notes"
    assert russian["forget"] == "Удалить заметки этого чата"


def test_help_privacy_mode_and_unknown_commands(
    start_bot: BotFactory, telegram: FakeTelegram
) -> None:
    start_bot(env={"RETENTION_DAYS": "21"})
    chat = private(BORIS)

    for text in ("/help", "/privacy", "/mode", "/mode nonsense", "/frobnicate"):
        telegram.send_text(chat, BORIS, text)
    help_, privacy, mode, usage, unknown = telegram.wait_for_messages(BORIS.id, 5)

    assert "/history" in help_.text
    assert "21 день" in privacy.text
    assert has_button(mode, "Подробное резюме")
    assert "brief, detailed, bullets, combined, clean" in usage.text
    assert "Такой команды я не знаю" in unknown.text


def test_pause_stops_transcribing_until_resume(
    start_bot: BotFactory, telegram: FakeTelegram, gemini: FakeGemini
) -> None:
    start_bot()
    chat = private(CAROL)
    telegram.send_text(chat, CAROL, "/pause")
    telegram.wait_for_messages(CAROL.id, 1)

    telegram.send_voice(chat, CAROL, recording("voice/en_11.ogg").data, duration=3)
    telegram.send_text(chat, CAROL, "/resume")
    telegram.wait_for_messages(CAROL.id, 2)
    reply = voice_reply(telegram, chat, CAROL, "voice/en_12.ogg", 2)

    assert recording("voice/en_12.ogg").text in reply.text
    assert len(gemini.requests) == 1  # the note sent while paused cost nothing


def test_forget_deletes_the_chats_notes_after_confirmation(
    start_bot: BotFactory, telegram: FakeTelegram
) -> None:
    start_bot()
    chat = private(ALICE)
    voice_reply(telegram, chat, ALICE, "voice/en_13.ogg", 0)
    voice_reply(telegram, chat, ALICE, "voice/en_14.ogg", 1)

    telegram.send_text(chat, ALICE, "/forget")
    confirm = telegram.wait_for_messages(ALICE.id, 3)[2]
    press(telegram, chat, ALICE, confirm, "Yes, delete everything")

    wait_text(telegram, confirm, "Deleted 2 notes.", "the deletion")
    telegram.send_text(chat, ALICE, "/history")
    assert "No notes yet" in telegram.wait_for_messages(ALICE.id, 4)[3].text


# -- groups ---------------------------------------------------------------------------


def test_start_in_a_group_explains_privacy_mode(
    start_bot: BotFactory, telegram: FakeTelegram
) -> None:
    start_bot()

    telegram.send_text(GROUP, ALICE, "/start@voicio_test_bot")

    reply = telegram.wait_for_messages(GROUP.id, 1)[0]
    assert "Group Privacy" in reply.text
    assert "/transcribe" in reply.text


def test_on_request_group_pays_nothing_until_transcribe(
    start_bot: BotFactory, telegram: FakeTelegram, gemini: FakeGemini
) -> None:
    telegram.set_admins(GROUP.id, [ALICE.id])
    start_bot()
    telegram.send_text(GROUP, ALICE, "/settings")
    menu = telegram.wait_for_messages(GROUP.id, 1)[0]
    press(telegram, GROUP, ALICE, menu, "Voice notes in this group")
    telegram.wait_until(
        lambda: has_button(current(telegram, menu), "Only on request"), what="policies"
    )
    press(telegram, GROUP, ALICE, current(telegram, menu), "Only on request")
    wait_text(telegram, menu, "Only on request", "the new policy")

    note = recording("voice/en_15.ogg")
    voice_id = telegram.send_voice(GROUP, CAROL, note.data, duration=3)
    telegram.send_text(GROUP, CAROL, "/help")
    telegram.wait_for_messages(GROUP.id, 2)
    assert gemini.requests == []
    assert telegram.requests("getFile") == []

    telegram.send_text(GROUP, CAROL, "/transcribe", reply_to=voice_id)

    reply = telegram.wait_for_messages(GROUP.id, 3)[2]
    assert note.text in reply.text
    assert reply.reply_to_message_id == voice_id
    assert reply.text.startswith("🎙 Carol")
    assert len(gemini.requests) == 1


def test_only_admins_change_group_settings(
    start_bot: BotFactory, telegram: FakeTelegram
) -> None:
    telegram.set_admins(GROUP.id, [ALICE.id])
    start_bot()
    telegram.send_text(GROUP, CAROL, "/settings")
    menu = telegram.wait_for_messages(GROUP.id, 1)[0]
    press(telegram, GROUP, CAROL, menu, "Default mode")
    telegram.wait_until(
        lambda: has_button(current(telegram, menu), "Detailed summary"), what="modes"
    )

    press(telegram, GROUP, CAROL, current(telegram, menu), "Detailed summary")
    telegram.wait_until(
        lambda: len(telegram.callback_answers()) == 2, what="the refusal"
    )
    telegram.send_text(GROUP, CAROL, "/pause")

    assert last_answer(telegram) == ("Only group admins can change this.", True)
    refusal = telegram.wait_for_messages(GROUP.id, 2)[1]
    assert refusal.text == "Only group admins can change this."
    telegram.send_text(GROUP, CAROL, "/settings")
    assert (
        "Default mode: Brief summary" in telegram.wait_for_messages(GROUP.id, 3)[2].text
    )


# -- forged buttons ------------------------------------------------------------------


@pytest.mark.parametrize(
    "forged",
    [
        "m:{other}:detailed",  # another chat's note
        "t:{other}",
        "x:{other}@0",
        "z:1",  # an action Voicio has no name for
        "m:1:shouting",  # a mode that does not exist
        "s:tz:Mars+Olympus",  # a setting value not on offer
        "\x00\xff garbage",
        "h:1:2:3",
    ],
)
def test_forged_callbacks_get_an_alert_and_change_nothing(
    forged: str, start_bot: BotFactory, telegram: FakeTelegram, gemini: FakeGemini
) -> None:
    start_bot()
    voice_reply(telegram, private(ALICE), ALICE, "voice/en_18.ogg", 0)
    # Alice's second note has an id that no message in Carol's chat has.
    secret = voice_reply(telegram, private(ALICE), ALICE, "voice/en_16.ogg", 1)
    mine = voice_reply(telegram, private(CAROL), CAROL, "voice/en_17.ogg", 0)
    before = [(m.text, m.buttons) for m in telegram.bot_messages(CAROL.id)]
    data = forged.format(other=secret.reply_to_message_id)

    telegram.press_button(private(CAROL), CAROL, mine.message_id, data)

    telegram.wait_until(lambda: telegram.callback_answers(), what="an answer")
    text, alert = last_answer(telegram)
    assert alert
    assert text in ("This button no longer works.", "I can't find that note any more.")
    assert [(m.text, m.buttons) for m in telegram.bot_messages(CAROL.id)] == before
    assert recording("voice/en_16.ogg").text not in str(telegram.bot_messages(CAROL.id))
    assert len(gemini.requests) == 3


def test_button_data_fits_telegrams_limit_for_the_longest_ids() -> None:
    from voicio.actors import keyboards
    from voicio.domain import ChatSettings
    from voicio.i18n import translator

    t = translator("en")
    huge = 10**15 - 1
    boards = [
        keyboards.note_keyboard(t, huge),
        keyboards.mode_keyboard(t, huge, keyboards.Mode.COMBINED, 999_999),
        keyboards.history_keyboard(t, huge, 999_998, 999_999),
        keyboards.delete_keyboard(t, huge, 999_999),
        keyboards.setting_choices(t, "tz", ChatSettings()),
    ]
    for board in boards:
        for row in board:
            for _, data in row:
                assert len(data.encode()) <= 64
                assert keyboards.parse(data) is not None, data
