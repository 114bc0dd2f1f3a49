"""Drive the fake Telegram Bot API with the real python-telegram-bot client."""

from __future__ import annotations

import asyncio
import datetime as dtm
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    ReactionTypeEmoji,
    ReplyParameters,
    Update,
)
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.ext import Application, ContextTypes, MessageHandler, filters

from tests.fakes.telegram_api import (
    SECRET_HEADER,
    FakeChat,
    FakeTelegram,
    FakeUser,
    SentDocument,
)

USER = FakeUser(1001, "Ann", username="ann")
CHAT = FakeChat(1001, "private")
GROUP = FakeChat(-4001, "group", title="Team")
VOICE = os.urandom(10_000)

Scenario = Callable[[Bot], Awaitable[None]]


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    """Run a fake server with fast webhook retries for one test."""
    with FakeTelegram(webhook_retry_initial=0.05, webhook_retry_max=0.2) as server:
        yield server


@pytest.fixture(autouse=True)
def timedelta_durations(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opt in to PTB's timedelta durations; the int ones warn (errors here)."""
    monkeypatch.setenv("PTB_TIMEDELTA", "1")


def said(text: str) -> str:
    """Match an error text the way PTB rewrites it (capitalised, lower case)."""
    return "(?i)" + re.escape(text)


def make_bot(fake: FakeTelegram, **kwargs: Any) -> Bot:
    """Build a PTB bot talking to the fake."""
    return Bot(
        fake.token,
        base_url=fake.base_url,
        base_file_url=fake.file_base_url,
        **kwargs,
    )


def run(fake: FakeTelegram, scenario: Scenario) -> None:
    """Run ``scenario`` with an initialised bot inside a fresh event loop."""

    async def main() -> None:
        async with make_bot(fake) as bot:
            await scenario(bot)

    asyncio.run(main())


async def wait_for(
    fake: FakeTelegram, predicate: Callable[[], bool], what: str
) -> None:
    """Wait on the fake's condition from async code without blocking the loop."""
    await asyncio.to_thread(fake.wait_until, predicate, 5.0, what)


def polling(fake: FakeTelegram) -> bool:
    """Tell whether a getUpdates call has been read and is being handled."""
    return any(r.params for r in fake.requests("getUpdates"))


def keyboard(*data: str) -> InlineKeyboardMarkup:
    """Build a one-row inline keyboard with the given callback data."""
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(f"b{i}", callback_data=d) for i, d in enumerate(data)]]
    )


@asynccontextmanager
async def receiver(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    """Serve ``handler`` at a local URL for webhook deliveries."""
    app = web.Application()
    app.router.add_post("/hook", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        await runner.cleanup()


# --- getUpdates --------------------------------------------------------------


def test_long_poll_returns_pushed_voice_and_offset_confirms(
    fake: FakeTelegram,
) -> None:
    async def scenario(bot: Bot) -> None:
        poll = asyncio.create_task(bot.get_updates(timeout=5))
        await wait_for(fake, lambda: polling(fake), "the long poll")
        assert fake.requests("getUpdates")[0].status == 0  # still waiting
        message_id = fake.send_voice(CHAT, USER, VOICE, duration=4)
        updates = await poll
        assert [u.message.message_id for u in updates if u.message] == [message_id]
        voice = updates[0].message.voice if updates[0].message else None
        assert voice is not None
        assert voice.duration == dtm.timedelta(seconds=4)
        assert voice.file_size == len(VOICE)
        assert fake.pending_updates() == 1
        rest = await bot.get_updates(offset=updates[0].update_id + 1, timeout=0)
        assert rest == ()
        assert fake.pending_updates() == 0

    run(fake, scenario)


def test_second_poller_terminates_the_first(fake: FakeTelegram) -> None:
    async def scenario(bot: Bot) -> None:
        first = asyncio.create_task(bot.get_updates(timeout=5))
        await wait_for(fake, lambda: polling(fake), "the long poll")
        async with make_bot(fake) as other_instance:
            await other_instance.get_updates(timeout=0)
        with pytest.raises(Conflict, match="terminated by other getUpdates"):
            await first

    run(fake, scenario)


def test_application_polling_end_to_end(fake: FakeTelegram) -> None:
    async def on_voice(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        await update.message.reply_text(
            "<i>transcribing</i>", parse_mode="HTML", do_quote=True
        )

    async def main() -> None:
        app = (
            Application.builder()
            .token(fake.token)
            .base_url(fake.base_url)
            .base_file_url(fake.file_base_url)
            .build()
        )
        app.add_handler(MessageHandler(filters.VOICE, on_voice))
        async with app:
            assert app.updater is not None
            await app.updater.start_polling(poll_interval=0, timeout=1)
            await app.start()
            voice_id = fake.send_voice(CHAT, USER, VOICE, duration=2)
            sent = await asyncio.to_thread(fake.wait_for_messages, CHAT.id, 1, 5)
            await app.updater.stop()
            await app.stop()
        assert sent[0].text == "transcribing"
        assert sent[0].reply_to_message_id == voice_id
        assert sent[0].entities == [{"type": "italic", "offset": 0, "length": 12}]
        assert fake.pending_updates() == 0

    asyncio.run(main())


# --- files ---------------------------------------------------------------------


def test_voice_downloads_byte_identical(fake: FakeTelegram) -> None:
    async def scenario(bot: Bot) -> None:
        fake.send_voice(CHAT, USER, VOICE, duration=3)
        (update,) = await bot.get_updates()
        assert update.message is not None
        assert update.message.voice is not None
        file = await bot.get_file(update.message.voice.file_id)
        assert bytes(await file.download_as_bytearray()) == VOICE
        path = fake.requests("getFile")[0].response["result"]["file_path"]
        assert path.startswith("voice/")
        assert file.file_path == f"{fake.file_base_url}{fake.token}/{path}"
        assert fake.downloads() == [path]

    run(fake, scenario)


def test_forwarded_copy_keeps_unique_id_with_new_file_id(fake: FakeTelegram) -> None:
    ref = fake.add_file(VOICE)
    origin = {"type": "hidden_user", "date": 1, "sender_user_name": "Bob"}
    fake.send_voice(CHAT, USER, ref, duration=3)
    fake.send_voice(CHAT, USER, ref, duration=3, forward_origin=origin)

    async def scenario(bot: Bot) -> None:
        first, second = (u.message.voice for u in await bot.get_updates() if u.message)
        assert first is not None
        assert second is not None
        assert first.file_unique_id == second.file_unique_id == ref.file_unique_id
        assert len({first.file_id, second.file_id, ref.file_id}) == 3
        data = await (await bot.get_file(second.file_id)).download_as_bytearray()
        assert bytes(data) == VOICE

    run(fake, scenario)


def test_get_file_refuses_files_over_20_mb(fake: FakeTelegram) -> None:
    fake.send_voice(CHAT, USER, b"tiny", duration=900, file_size=25 * 1024 * 1024)

    async def scenario(bot: Bot) -> None:
        (update,) = await bot.get_updates()
        assert update.message is not None
        assert update.message.voice is not None
        assert update.message.voice.file_size == 25 * 1024 * 1024
        with pytest.raises(BadRequest, match=said("File is too big")):
            await bot.get_file(update.message.voice.file_id)

    run(fake, scenario)


def test_send_document_multipart_is_stored(fake: FakeTelegram) -> None:
    async def scenario(bot: Bot) -> None:
        message = await bot.send_document(
            CHAT.id,
            document=b"line one\nline two\n",
            filename="transcript.txt",
            caption="<b>Transcript</b>",
            parse_mode="HTML",
        )
        assert message.document is not None
        assert message.document.file_name == "transcript.txt"
        assert message.caption == "Transcript"

    run(fake, scenario)
    (sent,) = fake.bot_messages(CHAT.id)
    assert sent.document == SentDocument(
        file_name="transcript.txt",
        data=b"line one\nline two\n",
        caption="Transcript",
        mime_type="text/plain",
        file_id=sent.document.file_id if sent.document else "",
        file_unique_id=sent.document.file_unique_id if sent.document else "",
    )
    assert fake.requests("sendDocument")[0].params["document"]["size"] == 18


# --- text, entities and limits -----------------------------------------------


@pytest.mark.parametrize(
    ("html", "reason"),
    [
        ("<foo>x</foo>", 'unsupported start tag "foo" at byte offset 0'),
        ("<b>bold", "can't find end tag"),
        ("<b><i>x</b></i>", "unmatched end tag"),
        ("1 < 2", 'unescaped "<" does not start a tag at byte offset 2'),
        ("Tom & Jerry", 'unescaped "&"'),
        ("é & ü", "at byte offset 3"),
        ("<pre><b>x</b></pre>", "can't be nested"),
        ('<span class="x">s</span>', "tg-spoiler"),
    ],
)
def test_html_rejections(fake: FakeTelegram, html: str, reason: str) -> None:
    async def scenario(bot: Bot) -> None:
        with pytest.raises(BadRequest, match=said("Can't parse entities")) as caught:
            await bot.send_message(CHAT.id, html, parse_mode="HTML")
        assert reason.lower() in caught.value.message.lower()

    run(fake, scenario)
    assert fake.bot_messages(CHAT.id) == []
    assert fake.requests("sendMessage")[0].status == 400


def test_text_length_counts_after_parsing_in_utf16(fake: FakeTelegram) -> None:
    chunk = "<b>" + "a" * 32 + "</b>"

    async def scenario(bot: Bot) -> None:
        await bot.send_message(CHAT.id, chunk * 128, parse_mode="HTML")
        await bot.send_message(CHAT.id, "😀" * 2048)
        with pytest.raises(BadRequest, match=said("message is too long")):
            await bot.send_message(CHAT.id, "😀" * 2049)
        with pytest.raises(BadRequest, match=said("message is too long")):
            await bot.send_message(
                CHAT.id, "<i>" + "a" * 4097 + "</i>", parse_mode="HTML"
            )
        with pytest.raises(BadRequest, match=said("message text is empty")):
            await bot.send_message(CHAT.id, "<b> </b>", parse_mode="HTML")

    run(fake, scenario)
    long_html, emoji = fake.bot_messages(CHAT.id)
    assert len(long_html.raw_text) == 4992
    assert len(long_html.text) == 4096
    assert len(long_html.entities) == 128
    assert long_html.entities[1] == {"type": "bold", "offset": 32, "length": 32}
    assert len(emoji.text) == 2048


def test_html_entities_are_derived_in_utf16(fake: FakeTelegram) -> None:
    html = (
        '😀 <b>bold <i>both</i></b> <a href="https://x.y/?a=1&amp;b=2">link</a> '
        '<pre><code class="language-python">x &lt; 1</code></pre>'
        "<blockquote expandable>q</blockquote>&#128512;"
    )

    async def scenario(bot: Bot) -> None:
        message = await bot.send_message(CHAT.id, html, parse_mode="HTML")
        assert message.text == "😀 bold both link x < 1q😀"

    run(fake, scenario)
    (sent,) = fake.bot_messages(CHAT.id)
    assert sent.entities == [
        {"type": "bold", "offset": 3, "length": 9},
        {"type": "italic", "offset": 8, "length": 4},
        {"type": "text_link", "offset": 13, "length": 4, "url": "https://x.y/?a=1&b=2"},
        {"type": "pre", "offset": 18, "length": 5, "language": "python"},
        {"type": "expandable_blockquote", "offset": 23, "length": 1},
    ]


def test_markdown_v2_requires_escaping(fake: FakeTelegram) -> None:
    async def scenario(bot: Bot) -> None:
        message = await bot.send_message(
            CHAT.id, "*Done* \\- see [notes](https://x.y/a_\\(b\\))\\!", "MarkdownV2"
        )
        assert message.text == "Done - see notes!"
        with pytest.raises(BadRequest, match=said("character '!' is reserved")):
            await bot.send_message(CHAT.id, "Done!", parse_mode="MarkdownV2")
        with pytest.raises(BadRequest, match=said("can't find end of bold")):
            await bot.send_message(CHAT.id, "*open", parse_mode="MarkdownV2")

    run(fake, scenario)
    (sent,) = fake.bot_messages(CHAT.id)
    assert sent.entities == [
        {"type": "bold", "offset": 0, "length": 4},
        {"type": "text_link", "offset": 11, "length": 5, "url": "https://x.y/a_(b)"},
    ]


def test_callback_data_is_limited_to_64_bytes(fake: FakeTelegram) -> None:
    async def scenario(bot: Bot) -> None:
        await bot.send_message(CHAT.id, "ok", reply_markup=keyboard("x" * 64, "é" * 32))
        for data in ("x" * 65, "é" * 33):
            with pytest.raises(BadRequest, match=said("BUTTON_DATA_INVALID")):
                await bot.send_message(CHAT.id, "no", reply_markup=keyboard(data))

    run(fake, scenario)
    (sent,) = fake.bot_messages(CHAT.id)
    assert sent.buttons == [[("b0", "x" * 64), ("b1", "é" * 32)]]


def test_reply_to_missing_message(fake: FakeTelegram) -> None:
    user_message = fake.send_text(CHAT, USER, "hello")

    async def scenario(bot: Bot) -> None:
        await bot.send_message(CHAT.id, "hi", reply_to_message_id=user_message)
        with pytest.raises(BadRequest, match=said("message to be replied not found")):
            await bot.send_message(CHAT.id, "hi", reply_to_message_id=999)
        lenient = ReplyParameters(999, allow_sending_without_reply=True)
        await bot.send_message(CHAT.id, "hi", reply_parameters=lenient)

    run(fake, scenario)
    replies = [m.reply_to_message_id for m in fake.bot_messages(CHAT.id)]
    assert replies == [user_message, None]


# --- edits, deletes, reactions -----------------------------------------------


def test_edit_not_modified_and_not_found(fake: FakeTelegram) -> None:
    async def scenario(bot: Bot) -> None:
        markup = keyboard("again")
        message = await bot.send_message(CHAT.id, "Working", reply_markup=markup)
        chat_id, message_id = CHAT.id, message.message_id
        with pytest.raises(BadRequest, match=said("message is not modified")):
            await bot.edit_message_text(
                "Working", chat_id, message_id, reply_markup=markup
            )
        with pytest.raises(BadRequest, match=said("message is not modified")):
            await bot.edit_message_reply_markup(
                chat_id, message_id, reply_markup=markup
            )
        edited = await bot.edit_message_text(
            "<b>Working</b>", chat_id, message_id, parse_mode="HTML"
        )
        assert isinstance(edited, Message)
        assert edited.reply_markup is None
        with pytest.raises(BadRequest, match=said("message to edit not found")):
            await bot.edit_message_text("x", chat_id, 999)
        assert await bot.delete_message(chat_id, message_id)
        with pytest.raises(BadRequest, match=said("message to edit not found")):
            await bot.edit_message_text("x", chat_id, message_id)
        with pytest.raises(BadRequest, match=said("message to delete not found")):
            await bot.delete_message(chat_id, message_id)

    run(fake, scenario)
    assert fake.bot_messages(CHAT.id) == []
    (sent,) = fake.bot_messages(CHAT.id, include_deleted=True)
    assert (sent.deleted, sent.edits, sent.buttons) == (True, 1, [])
    assert sent.entities == [{"type": "bold", "offset": 0, "length": 7}]


def test_reactions(fake: FakeTelegram) -> None:
    voice_id = fake.send_voice(CHAT, USER, VOICE, duration=1)

    async def scenario(bot: Bot) -> None:
        await bot.set_message_reaction(CHAT.id, voice_id, ReactionTypeEmoji("👀"))
        with pytest.raises(BadRequest, match=said("REACTION_INVALID")):
            await bot.set_message_reaction(CHAT.id, voice_id, "❤️")
        await bot.set_message_reaction(CHAT.id, voice_id, "❤")

    run(fake, scenario)
    assert fake.reactions(CHAT.id, voice_id) == ["❤"]


# --- errors the bot must survive -----------------------------------------------


def test_retry_after_from_injected_429(fake: FakeTelegram) -> None:
    fake.fail("sendMessage", parameters={"retry_after": 1})

    async def scenario(bot: Bot) -> None:
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(CHAT.id, "first")
        assert caught.value.retry_after == dtm.timedelta(seconds=1)
        await bot.send_message(CHAT.id, "second")

    run(fake, scenario)
    assert [m.text for m in fake.bot_messages(CHAT.id)] == ["second"]
    assert [r.status for r in fake.requests("sendMessage")] == [429, 200]


def test_chat_migrated(fake: FakeTelegram) -> None:
    fake.send_text(GROUP, USER, "/start@voicio_test_bot")
    fake.migrate_chat(GROUP.id, -1001234)

    async def scenario(bot: Bot) -> None:
        with pytest.raises(ChatMigrated) as caught:
            await bot.send_message(GROUP.id, "hello")
        assert caught.value.new_chat_id == -1001234
        await bot.send_message(-1001234, "hello")
        updates = await bot.get_updates()
        service = [u.message.migrate_to_chat_id for u in updates if u.message]
        assert service == [None, -1001234, None]

    run(fake, scenario)
    assert [m.text for m in fake.bot_messages(-1001234)] == ["hello"]


def test_forbidden_after_block(fake: FakeTelegram) -> None:
    fake.block(CHAT.id)

    async def scenario(bot: Bot) -> None:
        with pytest.raises(Forbidden, match="bot was blocked by the user"):
            await bot.send_message(CHAT.id, "hello")
        with pytest.raises(Forbidden):
            await bot.send_chat_action(CHAT.id, "typing")

    run(fake, scenario)


def test_dropped_connection_still_delivers(fake: FakeTelegram) -> None:
    fake.drop_connection("sendMessage")

    async def scenario(bot: Bot) -> None:
        with pytest.raises(NetworkError):
            await bot.send_message(CHAT.id, "maybe")

    run(fake, scenario)
    assert [m.text for m in fake.bot_messages(CHAT.id)] == ["maybe"]
    assert fake.requests("sendMessage")[0].dropped


def test_latency_makes_the_client_time_out(fake: FakeTelegram) -> None:
    fake.set_latency(0.3, "sendMessage")

    async def main() -> None:
        async with make_bot(fake) as bot:
            with pytest.raises(TimedOut):
                await bot.send_message(CHAT.id, "slow", read_timeout=0.05)

    asyncio.run(main())
    assert [m.text for m in fake.wait_for_messages(CHAT.id, 1, timeout=5)] == ["slow"]


def test_wrong_token_and_unknown_method(fake: FakeTelegram) -> None:
    async def main() -> None:
        bot = Bot("999:WRONG", base_url=fake.base_url)
        try:
            with pytest.raises(InvalidToken):
                await bot.initialize()
        finally:
            await bot.shutdown()
        async with make_bot(fake) as good:
            with pytest.raises(EndPointNotFound):
                await good.do_api_request("sendTelepathy")

    asyncio.run(main())
    assert fake.requests("getMe")[0].status == 401


def test_restart_keeps_the_port_and_the_state(fake: FakeTelegram) -> None:
    fake.send_text(CHAT, USER, "hello")

    async def scenario(bot: Bot) -> None:
        url = fake.url
        await asyncio.to_thread(fake.stop)
        with pytest.raises(NetworkError):
            await bot.get_updates()
        await asyncio.to_thread(fake.start)
        assert fake.url == url
        first, *_ = await bot.get_updates(timeout=5)
        assert first.message is not None
        assert first.message.text == "hello"

    run(fake, scenario)


def test_allowed_updates_filters_and_persists(fake: FakeTelegram) -> None:
    fake.send_text(CHAT, USER, "filtered out")

    async def scenario(bot: Bot) -> None:
        menu = await bot.send_message(CHAT.id, "menu", reply_markup=keyboard("go"))
        fake.press_button(CHAT, USER, menu.message_id, "go")
        updates = await bot.get_updates(allowed_updates=["callback_query"])
        assert [u.callback_query is not None for u in updates] == [True]
        fake.send_text(CHAT, USER, "still filtered out")
        assert await bot.get_updates(offset=updates[0].update_id + 1) == ()
        assert fake.pending_updates() == 0

    run(fake, scenario)


def test_wait_until_times_out_with_message(fake: FakeTelegram) -> None:
    with pytest.raises(
        AssertionError, match=re.escape("timed out after 0.05s waiting for x")
    ):
        fake.wait_until(lambda: False, timeout=0.05, what="x")


# --- webhook -------------------------------------------------------------------


def test_webhook_delivery_with_secret_retried_after_500(fake: FakeTelegram) -> None:
    seen: list[tuple[str | None, int]] = []

    async def hook(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append((request.headers.get(SECRET_HEADER), body["update_id"]))
        return web.Response(status=500 if len(seen) == 1 else 200)

    async def scenario(bot: Bot) -> None:
        async with receiver(hook) as url:
            await bot.set_webhook(url, secret_token="s3cret")
            update_id = fake.push_update({"message": {"message_id": 1, "date": 1}})
            await wait_for(fake, lambda: fake.pending_updates() == 0, "delivery")
            info = await bot.get_webhook_info()
        assert seen == [("s3cret", update_id), ("s3cret", update_id)]
        assert info.url == url
        assert info.pending_update_count == 0
        assert "500" in (info.last_error_message or "")

    run(fake, scenario)


def test_get_updates_conflicts_with_webhook(fake: FakeTelegram) -> None:
    async def scenario(bot: Bot) -> None:
        await bot.set_webhook("http://127.0.0.1:9/unreachable")
        with pytest.raises(Conflict, match="webhook is active"):
            await bot.get_updates()
        await bot.delete_webhook()
        assert await bot.get_updates(timeout=0) == ()

    run(fake, scenario)


# --- buttons, commands, members --------------------------------------------------


def test_press_button_yields_parsable_callback_query(fake: FakeTelegram) -> None:
    async def scenario(bot: Bot) -> None:
        message = await bot.send_message(
            CHAT.id, "Pick", reply_markup=keyboard("sum:7")
        )
        query_id = fake.press_button(CHAT, USER, message.message_id, "sum:7")
        await bot.get_updates()
        raw = fake.requests("getUpdates")[-1].response["result"][0]
        update = Update.de_json(raw, bot)
        query = update.callback_query
        assert query is not None
        assert query.id == query_id
        assert query.data == "sum:7"
        assert query.from_user.id == USER.id
        assert query.message is not None
        assert query.message.message_id == message.message_id
        await bot.answer_callback_query(query_id, text="Summing", show_alert=True)
        with pytest.raises(BadRequest, match=said("query is too old")):
            await bot.answer_callback_query(query_id)

    run(fake, scenario)
    (answer,) = fake.callback_answers()
    assert (answer.text, answer.show_alert) == ("Summing", True)


def test_commands_per_scope_and_language(fake: FakeTelegram) -> None:
    async def scenario(bot: Bot) -> None:
        await bot.set_my_commands([BotCommand("start", "Start")])
        scope = BotCommandScopeChat(CHAT.id)
        await bot.set_my_commands([BotCommand("lang", "Язык")], scope, "ru")
        got = await bot.get_my_commands(scope=scope, language_code="ru")
        assert [c.command for c in got] == ["lang"]
        with pytest.raises(BadRequest, match=said("BOT_COMMAND_INVALID")):
            await bot.set_my_commands([BotCommand("Bad-Name", "x")])
        await bot.delete_my_commands(scope, "ru")

    run(fake, scenario)
    assert fake.commands() == [{"command": "start", "description": "Start"}]
    chat_scope = {"type": "chat", "chat_id": CHAT.id}
    assert fake.commands(scope=chat_scope, language_code="ru") == []


def test_chat_members_and_admins(fake: FakeTelegram) -> None:
    fake.send_text(GROUP, USER, "/start@voicio_test_bot now")
    fake.set_admins(GROUP.id, [USER.id, fake.bot_id])

    async def scenario(bot: Bot) -> None:
        (update,) = await bot.get_updates()
        assert update.message is not None
        (entity,) = update.message.entities
        assert (entity.type, entity.length) == ("bot_command", 22)
        chat = await bot.get_chat(GROUP.id)
        assert chat.title == "Team"
        owner = await bot.get_chat_member(GROUP.id, USER.id)
        assert owner.status == "creator"
        admins = await bot.get_chat_administrators(GROUP.id)
        assert [a.user.id for a in admins] == [USER.id, fake.bot_id]
        stranger = await bot.get_chat_member(GROUP.id, 777)
        assert stranger.status == "left"

    run(fake, scenario)
