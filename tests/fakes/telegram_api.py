"""Serve a fake Telegram Bot API over real HTTP for tests and benchmarks.

The bot under test keeps its real python-telegram-bot client and is pointed at
this server through ``base_url``/``base_file_url``; the fake answers with the
same envelopes, status codes and ``Bad Request`` descriptions Telegram uses, so
wire formats, error mapping and retries are exercised end to end.

The server is an aiohttp application running on its own asyncio loop in a
background thread. Tests drive it from their own thread: user actions create
updates (served through ``getUpdates`` long polling or pushed to a webhook) and
inspection methods report what the bot did. All shared state sits behind one
re-entrant lock whose condition variable is notified on every change, which is
what :meth:`FakeTelegram.wait_until` waits on.

Typical use in a test::

    with FakeTelegram() as telegram:
        bot = Bot(
            telegram.token,
            base_url=telegram.base_url,
            base_file_url=telegram.file_base_url,
        )
        ann = FakeUser(7, "Ann")
        telegram.send_voice(FakeChat(7, "private"), ann, audio, duration=3)
        (reply,) = telegram.wait_for_messages(7, 1)

Note that python-telegram-bot rewrites ``Bad Request`` descriptions: it drops
the prefix and applies ``str.capitalize`` (so ``BUTTON_DATA_INVALID`` reaches
the bot as ``Button_data_invalid``); compare error texts case-insensitively.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import itertools
import json
import logging
import mimetypes
import re
import secrets
import socket
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, NoReturn, Self

from aiohttp import (
    BodyPartReader,
    ClientConnectorError,
    ClientError,
    ClientSession,
    ClientTimeout,
    web,
)

__all__ = [
    "ALLOWED_REACTIONS",
    "ApiRequest",
    "CallbackAnswer",
    "FakeChat",
    "FakeTelegram",
    "FakeUser",
    "FileRef",
    "SentDocument",
    "SentMessage",
]

_LOG = logging.getLogger(__name__)

JSON = dict[str, Any]
Buttons = list[list[tuple[str, str | None]]]

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
MAX_CALLBACK_ANSWER = 200
MAX_DOWNLOAD = 20 * 1024 * 1024
MAX_UPLOAD = 50 * 1024 * 1024
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

NOT_MODIFIED = (
    "message is not modified: specified new message content and "
    "reply markup are exactly the same as a current content and reply markup "
    "of the message"
)
CONFLICT_WEBHOOK = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
CONFLICT_POLLER = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
CONFLICT_SET_WEBHOOK = "Conflict: terminated by setWebhook request"
QUERY_INVALID = "query is too old and response timeout expired or query ID is invalid"
MIGRATED = "Bad Request: group chat was upgraded to a supergroup chat"
BLOCKED = "Forbidden: bot was blocked by the user"


def _words(text: str) -> frozenset[str]:
    """Make a set of the whitespace-separated words of ``text``."""
    return frozenset(text.split())


# The emoji reactions Telegram offers bots, exactly as it spells them.
_REACTION_TEXT = (
    "👍 👎 ❤ 🔥 🥰 👏 😁 🤔 🤯 😱 🤬 😢 🎉 🤩 🤮 💩 🙏 👌 🕊 🤡 "
    "🥱 🥴 😍 🐳 ❤‍🔥 🌚 🌭 💯 🤣 ⚡ 🍌 🏆 💔 🤨 😐 🍓 🍾 💋 🖕 😈 "
    "😴 😭 🤓 👻 👨‍💻 👀 🎃 🙈 😇 😨 🤝 ✍ 🤗 🫡 🎅 🎄 ☃ 💅 🤪 🗿 "
    "🆒 💘 🙉 🦄 😘 💊 🙊 😎 👾 🤷‍♂ 🤷 🤷‍♀ 😡 "
)
ALLOWED_REACTIONS = _words(_REACTION_TEXT)
CHAT_ACTIONS = _words(
    "typing upload_photo record_video upload_video record_voice "
    "upload_voice upload_document choose_sticker find_location "
    "record_video_note upload_video_note"
)
COMMAND_SCOPES = _words(
    "default all_private_chats all_group_chats all_chat_administrators "
    "chat chat_administrators chat_member"
)
# Update types Telegram leaves out unless allowed_updates names them.
OPT_IN_UPDATES = frozenset(
    {"chat_member", "message_reaction", "message_reaction_count"}
)
BUTTON_ACTIONS = (
    "callback_data",
    "url",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)

_JSON_FIELDS = _words(
    "reply_markup reply_parameters allowed_updates reaction commands "
    "scope link_preview_options entities caption_entities"
)
_NUMBER_FIELDS = _words(
    "message_id offset limit timeout max_connections user_id "
    "reply_to_message_id message_thread_id cache_time"
)
_BOOL_FIELDS = _words(
    "drop_pending_updates allow_sending_without_reply show_alert "
    "disable_notification protect_content is_big "
    "disable_content_type_detection"
)
_FILE_DIRS = {
    "voice": "voice",
    "audio": "music",
    "video_note": "video_notes",
    "document": "documents",
    "photo": "photos",
    "sticker": "stickers",
}
_COMMAND_RE = re.compile(r"/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?")
_BOT_COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")
_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
_EMOJI_URL_RE = re.compile(r"tg://emoji\?id=(\d+)")


# --------------------------------------------------------------------------
# Public value types
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeUser:
    """Describe a Telegram user who talks to the bot."""

    id: int
    first_name: str
    language_code: str | None = "en"
    username: str | None = None
    last_name: str | None = None
    is_bot: bool = False

    def to_dict(self) -> JSON:
        """Render the user as a Bot API ``User`` object."""
        data: JSON = {"id": self.id, "is_bot": self.is_bot}
        data["first_name"] = self.first_name
        _put(data, "last_name", self.last_name)
        _put(data, "username", self.username)
        _put(data, "language_code", self.language_code)
        return data


@dataclass(frozen=True)
class FakeChat:
    """Describe a chat: ``private``, ``group`` or ``supergroup``."""

    id: int
    type: str
    title: str | None = None


@dataclass(frozen=True)
class FileRef:
    """Identify a file stored in the fake, as ``getFile`` would describe it."""

    file_id: str
    file_unique_id: str
    file_size: int
    file_path: str


@dataclass(frozen=True)
class SentDocument:
    """Hold a document the bot uploaded with ``sendDocument``."""

    file_name: str
    data: bytes
    caption: str | None
    mime_type: str
    file_id: str = ""
    file_unique_id: str = ""


@dataclass(frozen=True)
class SentMessage:
    """Snapshot one message the bot sent, as the user currently sees it."""

    message_id: int
    chat_id: int
    text: str
    raw_text: str
    parse_mode: str | None
    entities: list[JSON]
    reply_to_message_id: int | None
    reply_markup: JSON | None
    buttons: Buttons
    document: SentDocument | None
    deleted: bool
    edits: int
    date: int


@dataclass(frozen=True)
class CallbackAnswer:
    """Record one ``answerCallbackQuery`` call."""

    callback_query_id: str
    text: str | None
    show_alert: bool
    url: str | None = None


@dataclass
class ApiRequest:
    """Record one API call: decoded parameters, arrival time and the answer."""

    method: str
    params: JSON
    time: float
    status: int = 0
    response: JSON = field(default_factory=dict)
    dropped: bool = False


# --------------------------------------------------------------------------
# Internal state
# --------------------------------------------------------------------------


class _ApiError(Exception):
    """Carry an error answer back to the HTTP layer."""

    def __init__(
        self, status: int, description: str, parameters: JSON | None = None
    ) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def envelope(self) -> JSON:
        """Build the ``ok: false`` body Telegram sends for this error."""
        body: JSON = {"ok": False, "error_code": self.status}
        body["description"] = self.description
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def _bad(reason: str) -> _ApiError:
    """Make a 400 error whose description starts like Telegram's."""
    return _ApiError(400, f"Bad Request: {reason}")


@dataclass(frozen=True)
class _Upload:
    """Hold one multipart file part."""

    filename: str
    content_type: str | None
    data: bytes

    def describe(self) -> JSON:
        """Summarise the upload for the request log."""
        return {
            "file_name": self.filename,
            "mime_type": self.content_type,
            "size": len(self.data),
        }


@dataclass(frozen=True)
class _File:
    """Hold one stored file with the size Telegram advertises for it."""

    file_id: str
    file_unique_id: str
    file_size: int
    file_path: str
    data: bytes

    def ref(self) -> FileRef:
        """Return the public reference to this file."""
        return FileRef(
            self.file_id, self.file_unique_id, self.file_size, self.file_path
        )

    def media(self) -> JSON:
        """Return the id and size fields shared by every media object."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.file_size,
        }


@dataclass
class _Msg:
    """Hold one message of a chat, from a user or from the bot."""

    data: JSON
    sent: SentMessage | None = None
    deleted: bool = False
    reactions: tuple[str, ...] = ()


@dataclass
class _ChatState:
    """Hold the messages and members of one chat."""

    info: JSON
    next_id: int = 1
    messages: dict[int, _Msg] = field(default_factory=dict)
    bot_ids: list[int] = field(default_factory=list)
    live: int = 0
    members: set[int] = field(default_factory=set)

    @property
    def type(self) -> str:
        """Return the chat type."""
        return str(self.info["type"])

    def take_id(self) -> int:
        """Allocate the next message id of this chat."""
        self.next_id += 1
        return self.next_id - 1


@dataclass(frozen=True)
class _Webhook:
    """Hold the settings of an active webhook."""

    url: str
    secret: str | None
    max_connections: int


@dataclass(frozen=True)
class _Fault:
    """Hold an injected error answer."""

    status: int
    description: str
    parameters: JSON | None


@dataclass(frozen=True)
class _Text:
    """Hold formatted text: what was sent and what the user sees."""

    raw: str
    plain: str
    entities: list[JSON]
    parse_mode: str | None


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def _put(data: JSON, key: str, value: Any) -> None:
    """Set ``key`` only when ``value`` is not None, as Telegram omits nulls."""
    if value is not None:
        data[key] = value


def _now() -> int:
    """Return the current Unix time in whole seconds."""
    return int(time.time())


def _utf16_len(text: str) -> int:
    """Count UTF-16 code units, the unit of Telegram offsets and limits."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _byte_offset(text: str, index: int) -> int:
    """Convert a character index into a UTF-8 byte offset."""
    return len(text[:index].encode("utf-8", "surrogatepass"))


def _without_reply(data: JSON) -> JSON:
    """Copy a message without its own ``reply_to_message``, as Telegram nests."""
    return {k: v for k, v in data.items() if k != "reply_to_message"}


def _inline(markup: JSON | None) -> JSON | None:
    """Return ``markup`` when it is an inline keyboard, else None."""
    if markup is not None and "inline_keyboard" in markup:
        return markup
    return None


def _buttons(markup: JSON | None) -> Buttons:
    """List (text, callback_data) per button row of an inline keyboard."""
    rows = (_inline(markup) or {}).get("inline_keyboard", [])
    return [[(b["text"], b.get("callback_data")) for b in row] for row in rows]


def _update_type(update: JSON) -> str:
    """Return the payload key of an update, e.g. ``message``."""
    return next((k for k in update if k != "update_id"), "")


def _guess_mime(filename: str, declared: str | None) -> str:
    """Pick a document MIME type from the upload's header or its name."""
    if declared and declared != "application/octet-stream":
        return declared
    guessed, _ = mimetypes.guess_type(filename)
    return guessed or "application/octet-stream"


def _suffix(file_name: str) -> str:
    """Return the extension of a file name, dot included, or an empty string."""
    _, dot, ext = file_name.rpartition(".")
    return f".{ext}" if dot and ext.isalnum() else ""


# --------------------------------------------------------------------------
# Parameter decoding
# --------------------------------------------------------------------------


def _number(name: str, value: str) -> int | float | str:
    """Decode a numeric form field, keeping a non-numeric chat_id as text."""
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        if name == "chat_id":
            return value
        raise _bad(f"wrong parameter {name} specified") from None


def _decode_value(name: str, value: Any) -> Any:
    """Turn one form field into the JSON value it stands for."""
    if not isinstance(value, str):
        return value
    if name in _JSON_FIELDS:
        try:
            return json.loads(value)
        except ValueError:
            raise _bad(f"can't parse {name} JSON object") from None
    if name in _NUMBER_FIELDS or name == "chat_id":
        return _number(name, value)
    if name in _BOOL_FIELDS:
        return value.strip().lower() in ("true", "1")
    return value


async def _read_multipart(request: web.Request, raw: JSON) -> None:
    """Read form fields and file parts of a multipart body into ``raw``."""
    reader = await request.multipart()
    async for part in reader:
        if not isinstance(part, BodyPartReader) or part.name is None:
            continue
        if part.filename is None:
            raw[part.name] = await part.text()
            continue
        content_type = part.headers.get("Content-Type")
        data = bytes(await part.read())
        raw[part.name] = _Upload(part.filename, content_type, data)


async def _read_json(request: web.Request) -> JSON:
    """Read a JSON object body."""
    try:
        body = await request.json()
    except ValueError:
        raise _bad("can't parse JSON request body") from None
    if not isinstance(body, dict):
        raise _bad("JSON request body must be an object")
    return body


async def _read_params(request: web.Request) -> JSON:
    """Collect query, form, multipart or JSON parameters of a request."""
    raw: JSON = dict(request.query)
    if request.body_exists:
        ctype = request.content_type
        if ctype == "application/json":
            raw.update(await _read_json(request))
        elif ctype.startswith("multipart/"):
            await _read_multipart(request, raw)
        else:
            raw.update(await request.post())
    return {name: _decode_value(name, value) for name, value in raw.items()}


def _describe(params: JSON) -> JSON:
    """Copy parameters for the request log, summarising uploaded files."""
    return {k: v.describe() if isinstance(v, _Upload) else v for k, v in params.items()}


def _json_response(status: int, body: JSON) -> web.Response:
    """Serialise an envelope the way Telegram does (UTF-8 JSON)."""
    payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
    return web.Response(body=payload, status=status, content_type="application/json")


# --------------------------------------------------------------------------
# Entity parsing: HTML, MarkdownV2 and legacy Markdown
# --------------------------------------------------------------------------


class _EntityError(Exception):
    """Report a parse failure at a character index of the source."""

    def __init__(self, reason: str, index: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.index = index


@dataclass
class _Open:
    """Hold an entity whose end has not been seen yet."""

    tag: str
    kind: str
    start: int
    index: int
    extra: JSON = field(default_factory=dict)


class _EntityBuilder:
    """Accumulate plain text and the entities found while parsing markup."""

    def __init__(self, source: str) -> None:
        self.src = source
        self.out: list[str] = []
        self.pos = 0
        self.stack: list[_Open] = []
        self.entities: list[JSON] = []

    def emit(self, text: str) -> None:
        """Append visible text and advance the UTF-16 position."""
        self.out.append(text)
        self.pos += _utf16_len(text)

    def open(self, tag: str, kind: str, index: int, extra: JSON | None = None) -> None:
        """Start an entity at the current output position."""
        self.stack.append(_Open(tag, kind, self.pos, index, extra or {}))

    def close_top(self) -> _Open:
        """End the innermost open entity and record it when not empty."""
        entry = self.stack.pop()
        self.add(entry.kind, entry.start, entry.extra)
        return entry

    def add(self, kind: str, start: int, extra: JSON) -> None:
        """Record an entity from ``start`` to the current position."""
        if self.pos > start:
            entity: JSON = {"type": kind, "offset": start, "length": self.pos - start}
            entity.update(extra)
            self.entities.append(entity)

    def fail(self, reason: str, index: int) -> NoReturn:
        """Abort parsing with ``reason`` located at ``index``."""
        raise _EntityError(reason, index)

    def parse(self) -> tuple[str, list[JSON]]:
        """Return the plain text and entities of the source."""
        raise NotImplementedError

    def result(self) -> tuple[str, list[JSON]]:
        """Return the plain text and its entities sorted by position."""
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return "".join(self.out), self.entities


_HTML_KINDS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "a": "text_link",
    "tg-emoji": "custom_emoji",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
}
_HTML_SPECIAL = re.compile(r"[<&]")
_HTML_CHAR_REF = re.compile(
    r"&(?:(lt|gt|amp|quot)|#([0-9]{1,8})|#[xX]([0-9a-fA-F]{1,8}));"
)
_HTML_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ATTR = r"""[a-zA-Z_][\w-]*(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'>]+))?"""
_HTML_START = re.compile(rf"<([a-zA-Z][a-zA-Z0-9-]*)((?:\s+{_ATTR})*)\s*/?>")
_HTML_END = re.compile(r"</([a-zA-Z][a-zA-Z0-9-]*)\s*>")
_HTML_ATTR = re.compile(
    r"""([a-zA-Z_][\w-]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?"""
)


def _char_ref(match: re.Match[str]) -> str | None:
    """Decode one matched character reference, None when out of range."""
    name, dec, hexa = match.groups()
    if name:
        return _HTML_NAMED[name]
    code = int(dec) if dec else int(hexa, 16)
    if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF:
        return chr(code)
    return None


def _unescape_attr(value: str) -> str:
    """Decode character references inside an attribute value."""
    return _HTML_CHAR_REF.sub(lambda m: _char_ref(m) or m.group(), value)


def _html_attrs(text: str) -> dict[str, str]:
    """Parse the attribute list of a start tag; bare attributes map to ''."""
    attrs: dict[str, str] = {}
    for match in _HTML_ATTR.finditer(text):
        name, dq, sq, bare = match.groups()
        value = dq if dq is not None else sq if sq is not None else bare
        attrs[name.lower()] = _unescape_attr(value or "")
    return attrs


class _HtmlParser(_EntityBuilder):
    """Parse Telegram's HTML subset into plain text and entities."""

    def parse(self) -> tuple[str, list[JSON]]:
        """Walk the source, decoding tags and character references."""
        index = 0
        while True:
            match = _HTML_SPECIAL.search(self.src, index)
            end = match.start() if match else len(self.src)
            if end > index:
                self.emit(self.src[index:end])
            if match is None:
                break
            is_ref = match.group() == "&"
            index = self._char_ref(end) if is_ref else self._tag(end)
        if self.stack:
            top = self.stack[-1]
            self.fail(
                f'can\'t find end tag corresponding to start tag "{top.tag}"', top.index
            )
        return self.result()

    def _char_ref(self, index: int) -> int:
        """Decode the character reference at ``index``."""
        match = _HTML_CHAR_REF.match(self.src, index)
        char = _char_ref(match) if match else None
        if match is None or char is None:
            self.fail('unescaped "&" does not start a valid character entity', index)
        self.emit(char)
        return match.end()

    def _tag(self, index: int) -> int:
        """Handle the start or end tag at ``index``."""
        if self.src.startswith("</", index):
            return self._end_tag(index)
        match = _HTML_START.match(self.src, index)
        if match is None:
            follower = self.src[index + 1 : index + 2]
            if follower.isalpha():
                self.fail("unclosed start tag", index)
            self.fail('unescaped "<" does not start a tag', index)
        name = match.group(1).lower()
        kind = _HTML_KINDS.get(name)
        if kind is None:
            self.fail(f'unsupported start tag "{name}"', index)
        self._check_nesting(name, index)
        attrs = _html_attrs(match.group(2))
        kind, extra = self._tag_details(name, kind, attrs, index)
        self.open(name, kind, index, extra)
        return match.end()

    def _check_nesting(self, name: str, index: int) -> None:
        """Refuse tags inside pre/code, except one code directly inside pre."""
        inner = [o.tag for o in self.stack if o.tag in ("pre", "code")]
        if not inner:
            return
        if name == "code" and inner == ["pre"] and self.stack[-1].tag == "pre":
            return
        self.fail(f'tag "{name}" can\'t be nested inside "{inner[-1]}"', index)

    def _tag_details(
        self, name: str, kind: str, attrs: dict[str, str], index: int
    ) -> tuple[str, JSON]:
        """Validate a tag's attributes and derive the entity's extra fields."""
        if name == "span" and attrs.get("class") != "tg-spoiler":
            self.fail('tag "span" must have class "tg-spoiler"', index)
        if name == "a":
            if not attrs.get("href"):
                self.fail('tag "a" must have a non-empty "href" attribute', index)
            return kind, {"url": attrs["href"]}
        if name == "tg-emoji":
            if not attrs.get("emoji-id", "").isdigit():
                self.fail('tag "tg-emoji" must have a numeric "emoji-id"', index)
            return kind, {"custom_emoji_id": attrs["emoji-id"]}
        if name == "code" and attrs.get("class", "").startswith("language-"):
            return kind, {"language": attrs["class"].removeprefix("language-")}
        if name == "blockquote" and "expandable" in attrs:
            return "expandable_blockquote", {}
        return kind, {}

    def _end_tag(self, index: int) -> int:
        """Close the innermost open tag, which must match the end tag."""
        match = _HTML_END.match(self.src, index)
        if match is None:
            self.fail("unclosed end tag", index)
        name = match.group(1).lower()
        if not self.stack:
            self.fail(f'unexpected end tag "</{name}>"', index)
        top = self.stack[-1]
        if top.tag != name:
            self.fail(f'unmatched end tag "</{name}>", expected "</{top.tag}>"', index)
        self.stack.pop()
        parent = self.stack[-1] if self.stack else None
        if name == "code" and parent is not None and parent.tag == "pre":
            parent.extra.update(top.extra)
        else:
            self.add(top.kind, top.start, top.extra)
        return match.end()


_MD2_PLAIN = re.compile(r"[^_*\[\]()~`>#+\-=|{}.!\\\n]+")
_MD2_CODE_PLAIN = re.compile(r"[^`\\]+")
_MD2_TOGGLES = (
    ("__", "underline"),
    ("*", "bold"),
    ("_", "italic"),
    ("~", "strikethrough"),
)


class _MarkdownV2Parser(_EntityBuilder):
    """Parse MarkdownV2, refusing unescaped reserved characters."""

    def __init__(self, source: str) -> None:
        super().__init__(source)
        self.quote: _Open | None = None

    def parse(self) -> tuple[str, list[JSON]]:
        """Walk the source and return plain text and entities."""
        index = 0
        while index < len(self.src):
            index = self._step(index)
        if self.quote is not None:
            self._close_quote(self.pos)
        if self.stack:
            top = self.stack[-1]
            self.fail(f"can't find end of {top.kind} entity", top.index)
        return self.result()

    def _step(self, index: int) -> int:
        """Consume one run of text or one marker starting at ``index``."""
        if self.stack and self.stack[-1].kind in ("code", "pre"):
            return self._code_step(index)
        if index == 0 or self.src[index - 1] == "\n":
            after = self._line_start(index)
            if after != index:
                return after
        match = _MD2_PLAIN.match(self.src, index)
        if match:
            self.emit(match.group())
            return match.end()
        char = self.src[index]
        if char == "\\":
            return self._escape(index)
        if char == "\n":
            self.emit(char)
            return index + 1
        return self._marker(index)

    def _escape(self, index: int) -> int:
        """Emit the character after a backslash literally."""
        if index + 1 >= len(self.src):
            self.fail("text must not end with an unescaped '\\'", index)
        self.emit(self.src[index + 1])
        return index + 2

    def _code_step(self, index: int) -> int:
        """Consume text inside code or pre, where only ` and \\ are special."""
        top = self.stack[-1]
        if self.src[index] == "\\":
            return self._escape(index)
        if top.kind == "pre" and self.src.startswith("```", index):
            self.close_top()
            return index + 3
        if top.kind == "code" and self.src[index] == "`":
            self.close_top()
            return index + 1
        match = _MD2_CODE_PLAIN.match(self.src, index)
        end = match.end() if match else index + 1
        self.emit(self.src[index:end])
        return end

    def _line_start(self, index: int) -> int:
        """Open, continue or end a block quote at the start of a line."""
        if self.quote is None and self.src.startswith("**>", index):
            self.quote = _Open(">", "expandable_blockquote", self.pos, index)
            return index + 3
        if self.src.startswith(">", index):
            if self.quote is None:
                self.quote = _Open(">", "blockquote", self.pos, index)
            return index + 1
        if self.quote is not None and index > 0:
            self._close_quote(self.pos - 1)
        return index

    def _close_quote(self, end: int) -> None:
        """Record the open block quote as ending at UTF-16 position ``end``."""
        quote = self.quote
        self.quote = None
        if quote is not None and end > quote.start:
            length = end - quote.start
            self.entities.append(
                {"type": quote.kind, "offset": quote.start, "length": length}
            )

    def _marker(self, index: int) -> int:
        """Handle a formatting marker or reject a reserved character."""
        src = self.src
        if src.startswith("```", index):
            return self._open_pre(index)
        if src[index] == "`":
            self.open("`", "code", index)
            return index + 1
        if src.startswith("||", index):
            return self._spoiler(index)
        for marker, kind in _MD2_TOGGLES:
            if src.startswith(marker, index):
                self._toggle(marker, kind, index)
                return index + len(marker)
        if src.startswith("![", index):
            self.open("![", "custom_emoji", index)
            return index + 2
        if src[index] == "[":
            self.open("[", "text_link", index)
            return index + 1
        if src[index] == "]" and self.stack and self.stack[-1].tag in ("[", "!["):
            return self._close_link(index)
        char = src[index]
        self.fail(
            f"character '{char}' is reserved and must be escaped with "
            "the preceding '\\'",
            index,
        )

    def _open_pre(self, index: int) -> int:
        """Open a pre block, taking a language from its first line."""
        start = index + 3
        newline = self.src.find("\n", start)
        closing = self.src.find("```", start)
        extra: JSON = {}
        if newline != -1 and (closing == -1 or newline < closing):
            language = self.src[start:newline].strip()
            if language:
                extra["language"] = language
            start = newline + 1
        self.open("```", "pre", index, extra)
        return start

    def _spoiler(self, index: int) -> int:
        """Toggle a spoiler, or end an expandable block quote at line end."""
        at_line_end = self.src.startswith("\n", index + 2) or index + 2 == len(self.src)
        quote = self.quote
        in_spoiler = any(o.kind == "spoiler" for o in self.stack)
        if at_line_end and quote and quote.kind.startswith("exp") and not in_spoiler:
            self._close_quote(self.pos)
            return index + 2
        self._toggle("||", "spoiler", index)
        return index + 2

    def _toggle(self, marker: str, kind: str, index: int) -> None:
        """Close ``kind`` when innermost, else open it."""
        if self.stack and self.stack[-1].kind == kind:
            self.close_top()
            return
        if any(o.kind == kind for o in self.stack):
            top = self.stack[-1]
            self.fail(f"{top.kind} entity must be closed before {kind}", index)
        self.open(marker, kind, index)

    def _close_link(self, index: int) -> int:
        """Finish ``[text](url)`` or ``![emoji](tg://emoji?id=N)``."""
        if not self.src.startswith("(", index + 1):
            self.fail('expected "(" with the link URL after "]"', index)
        url, end = self._read_url(index + 2)
        top = self.stack[-1]
        if top.kind == "custom_emoji":
            match = _EMOJI_URL_RE.fullmatch(url)
            if match is None:
                self.fail("custom emoji needs a tg://emoji?id=N URL", index)
            top.extra["custom_emoji_id"] = match.group(1)
        else:
            top.extra["url"] = url
        self.close_top()
        return end

    def _read_url(self, index: int) -> tuple[str, int]:
        """Read a URL up to the first unescaped ``)``."""
        chars: list[str] = []
        while index < len(self.src):
            char = self.src[index]
            if char == ")":
                return "".join(chars), index + 1
            if char == "\\" and index + 1 < len(self.src):
                index += 1
                char = self.src[index]
            chars.append(char)
            index += 1
        self.fail("can't find end of the URL", index)


_MD1_PLAIN = re.compile(r"[^_*`\[\\]+")
_MD1_KINDS = {"*": "bold", "_": "italic", "`": "code"}


class _MarkdownParser(_EntityBuilder):
    """Parse legacy Markdown: no nesting, * _ ` ``` and [text](url)."""

    def parse(self) -> tuple[str, list[JSON]]:
        """Walk the source and return plain text and entities."""
        index = 0
        while index < len(self.src):
            match = None if self.stack else _MD1_PLAIN.match(self.src, index)
            if match:
                self.emit(match.group())
                index = match.end()
            else:
                index = self._marker(index)
        if self.stack:
            self.fail("can't find end of the entity", self.stack[-1].index)
        return self.result()

    def _marker(self, index: int) -> int:
        """Handle one character that may start or end an entity."""
        src = self.src
        char = src[index]
        if char == "\\" and src[index + 1 : index + 2] in ("_", "*", "`", "["):
            self.emit(src[index + 1])
            return index + 2
        if self.stack:
            return self._inside(index)
        if src.startswith("```", index):
            self.open("```", "pre", index)
            return index + 3
        if char in _MD1_KINDS:
            self.open(char, _MD1_KINDS[char], index)
            return index + 1
        if char == "[":
            self.open("[", "text_link", index)
            return index + 1
        self.emit(char)
        return index + 1

    def _inside(self, index: int) -> int:
        """Consume one character inside an entity, closing it when due."""
        top = self.stack[-1]
        src = self.src
        if top.tag == "```" and src.startswith("```", index):
            self.close_top()
            return index + 3
        if top.tag == src[index] and top.tag != "[":
            self.close_top()
            return index + 1
        if top.tag == "[" and src.startswith("](", index):
            end = src.find(")", index + 2)
            if end == -1:
                self.fail("can't find end of the URL", index)
            top.extra["url"] = src[index + 2 : end]
            self.close_top()
            return end + 1
        self.emit(src[index])
        return index + 1


_PARSERS: dict[str, type[_EntityBuilder]] = {
    "html": _HtmlParser,
    "markdownv2": _MarkdownV2Parser,
    "markdown": _MarkdownParser,
}


def _parse_markup(text: str, parse_mode: str) -> tuple[str, list[JSON]]:
    """Run the parser for ``parse_mode`` and translate its failure."""
    parser_cls = _PARSERS.get(parse_mode.lower())
    if parser_cls is None:
        raise _bad("unsupported parse_mode")
    parser = parser_cls(text)
    try:
        return parser.parse()
    except _EntityError as exc:
        offset = _byte_offset(text, exc.index)
        raise _bad(
            f"can't parse entities: {exc.reason} at byte offset {offset}"
        ) from None


def _explicit_entities(text: str, entities: Any) -> list[JSON]:
    """Validate entities passed explicitly instead of a parse mode."""
    if not isinstance(entities, list):
        raise _bad("can't parse entities JSON object")
    size = _utf16_len(text)
    result: list[JSON] = []
    for entity in entities:
        if not isinstance(entity, dict) or "type" not in entity:
            raise _bad("can't parse entities JSON object")
        offset, length = entity.get("offset"), entity.get("length")
        if not isinstance(offset, int) or not isinstance(length, int):
            raise _bad("can't parse entities JSON object")
        if offset < 0 or length <= 0 or offset + length > size:
            raise _bad("can't parse entities: entity is out of the text bounds")
        result.append(dict(entity))
    return result


def _trim(text: str, entities: list[JSON]) -> tuple[str, list[JSON]]:
    """Strip outer whitespace like Telegram, shifting and clipping entities."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    lead = _utf16_len(text[: len(text) - len(text.lstrip())])
    size = _utf16_len(stripped)
    clipped: list[JSON] = []
    for entity in entities:
        start = max(entity["offset"] - lead, 0)
        end = min(entity["offset"] + entity["length"] - lead, size)
        if end > start:
            clipped.append({**entity, "offset": start, "length": end - start})
    return stripped, clipped


def _format(params: JSON, key: str, *, caption: bool) -> _Text:
    """Parse and validate a text or caption the way Telegram counts it."""
    raw = params.get(key)
    raw = "" if raw is None else str(raw)
    mode = params.get("parse_mode") or None
    explicit = params.get("caption_entities" if caption else "entities")
    if explicit is not None:
        plain, entities = raw, _explicit_entities(raw, explicit)
    elif mode:
        plain, entities = _parse_markup(raw, str(mode))
    else:
        plain, entities = raw, []
    plain, entities = _trim(plain, entities)
    _check_length(plain, caption=caption)
    return _Text(raw, plain, entities, mode)


def _check_length(plain: str, *, caption: bool) -> None:
    """Enforce Telegram's length limits on visible text."""
    size = _utf16_len(plain)
    if caption:
        if size > MAX_CAPTION:
            raise _bad("message caption is too long")
        return
    if size == 0:
        raise _bad("message text is empty")
    if size > MAX_TEXT:
        raise _bad("message is too long")


# --------------------------------------------------------------------------
# Reply markup and commands validation
# --------------------------------------------------------------------------


def _check_markup(markup: Any) -> JSON | None:
    """Validate ``reply_markup`` and return it, None when absent."""
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise _bad("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        _check_inline_keyboard(markup["inline_keyboard"])
    elif not {"keyboard", "remove_keyboard", "force_reply"} & markup.keys():
        raise _bad("can't parse reply keyboard markup JSON object")
    return markup


def _check_inline_keyboard(rows: Any) -> None:
    """Validate every button of an inline keyboard."""
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise _bad("inline_keyboard must be an Array of Arrays of buttons")
    for row in rows:
        for button in row:
            _check_button(button)


def _check_button(button: Any) -> None:
    """Validate one inline keyboard button."""
    if not isinstance(button, dict):
        raise _bad(
            "can't parse inline keyboard button: InlineKeyboardButton must be an Object"
        )
    text = button.get("text")
    if not isinstance(text, str) or not text.strip():
        raise _bad("BUTTON_TEXT_INVALID")
    actions = [name for name in BUTTON_ACTIONS if name in button]
    if not actions:
        raise _bad("text buttons are unallowed in the inline keyboard")
    if "callback_data" in button:
        data = button["callback_data"]
        size = len(data.encode("utf-8")) if isinstance(data, str) else 0
        if not 1 <= size <= MAX_CALLBACK_DATA:
            raise _bad("BUTTON_DATA_INVALID")
    if "url" in button:
        url = button["url"]
        if not isinstance(url, str) or not url.startswith(
            ("http://", "https://", "tg://")
        ):
            raise _bad("BUTTON_URL_INVALID")


def _check_commands(commands: Any) -> list[JSON]:
    """Validate the ``commands`` list of setMyCommands."""
    if not isinstance(commands, list):
        raise _bad('parameter "commands" must be an Array')
    if len(commands) > 100:
        raise _bad("too many commands specified")
    result: list[JSON] = []
    for item in commands:
        if not isinstance(item, dict):
            raise _bad("BOT_COMMAND_INVALID")
        command, description = item.get("command"), item.get("description")
        if not isinstance(command, str) or not _BOT_COMMAND_RE.fullmatch(command):
            raise _bad("BOT_COMMAND_INVALID")
        if not isinstance(description, str) or not 1 <= len(description) <= 256:
            raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
        result.append({"command": command, "description": description})
    return result


def _scope_key(params: JSON) -> tuple[str, str]:
    """Build the storage key of a command list from scope and language."""
    scope = params.get("scope") or {"type": "default"}
    if not isinstance(scope, dict) or scope.get("type") not in COMMAND_SCOPES:
        raise _bad("unsupported bot command scope type")
    language = params.get("language_code") or ""
    if language and not re.fullmatch(r"[a-z]{2}", str(language)):
        raise _bad("invalid language code specified")
    return json.dumps(scope, sort_keys=True), str(language)


def _reactions(raw: Any) -> tuple[str, ...]:
    """Validate a ``reaction`` list and return its emojis."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _bad("can't parse reaction JSON object")
    if len(raw) > 1:
        raise _bad("REACTIONS_TOO_MANY")
    emojis: list[str] = []
    for item in raw:
        is_emoji = isinstance(item, dict) and item.get("type") == "emoji"
        if not is_emoji or item.get("emoji") not in ALLOWED_REACTIONS:
            raise _bad("REACTION_INVALID")
        emojis.append(item["emoji"])
    return tuple(emojis)


# --------------------------------------------------------------------------
# The fake server
# --------------------------------------------------------------------------

_Handler = Callable[[JSON], Any]


class FakeTelegram:
    """Emulate the Telegram Bot API over HTTP for one bot token."""

    def __init__(
        self,
        token: str = "123456:TEST-TOKEN",
        *,
        bot_id: int = 123456,
        bot_username: str = "voicio_test_bot",
        can_read_all_group_messages: bool = False,
        bot_first_name: str = "Voicio",
        webhook_retry_initial: float = 0.2,
        webhook_retry_max: float = 2.0,
        webhook_timeout: float = 10.0,
    ) -> None:
        self.token = token
        self.bot_id = bot_id
        self.bot_username = bot_username
        self.bot_first_name = bot_first_name
        self.can_read_all_group_messages = can_read_all_group_messages
        self.webhook_retry_initial = webhook_retry_initial
        self.webhook_retry_max = webhook_retry_max
        self.webhook_timeout = webhook_timeout
        self.url = ""
        self.base_url = ""
        self.file_base_url = ""
        self._cond = threading.Condition(threading.RLock())
        self._init_state()
        self._init_server_state()
        self._handlers = self._handler_table()
        self._names = {name.lower(): name for name in self._handlers}

    def _init_state(self) -> None:
        """Create the empty world: chats, files, updates and logs."""
        self._chats: dict[int, _ChatState] = {}
        self._users: dict[int, FakeUser] = {}
        self._files: dict[str, _File] = {}
        self._paths: dict[str, _File] = {}
        self._file_counter = itertools.count(1)
        self._pending: OrderedDict[int, JSON] = OrderedDict()
        self._last_update_id = 0
        self._allowed: frozenset[str] | None = None
        self._callbacks: dict[str, bool] = {}
        self._callback_counter = itertools.count(1)
        self._answers: list[CallbackAnswer] = []
        self._requests: list[ApiRequest] = []
        self._downloads: list[str] = []
        self._commands: dict[tuple[str, str], list[JSON]] = {}
        self._admins: dict[int, list[int]] = {}
        self._migrated: dict[int, int] = {}
        self._blocked: set[int] = set()
        self._faults: dict[str, deque[_Fault]] = {}
        self._drops: dict[str, int] = {}
        self._latency: dict[str | None, float] = {}

    def _init_server_state(self) -> None:
        """Create the polling, webhook and event-loop bookkeeping."""
        self._webhook: _Webhook | None = None
        self._webhook_error: tuple[int, str] | None = None
        self._inflight: set[int] = set()
        self._retry_at: dict[int, float] = {}
        self._retry_delay: dict[int, float] = {}
        self._poll_gen = 0
        self._poll_conflict = CONFLICT_POLLER
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self._wake: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._serving = False
        self._closing = False
        self._pulse_pending = False
        self._port = 0
        self._startup_error: BaseException | None = None

    def _handler_table(self) -> dict[str, _Handler]:
        """Map Bot API method names to their implementations."""
        return {
            "getMe": self._api_get_me,
            "getUpdates": self._api_get_updates,
            "setWebhook": self._api_set_webhook,
            "deleteWebhook": self._api_delete_webhook,
            "getWebhookInfo": self._api_get_webhook_info,
            "sendMessage": self._api_send_message,
            "editMessageText": self._api_edit_message_text,
            "editMessageReplyMarkup": self._api_edit_message_reply_markup,
            "deleteMessage": self._api_delete_message,
            "setMessageReaction": self._api_set_message_reaction,
            "sendChatAction": self._api_send_chat_action,
            "sendDocument": self._api_send_document,
            "answerCallbackQuery": self._api_answer_callback_query,
            "getFile": self._api_get_file,
            "setMyCommands": self._api_set_my_commands,
            "getMyCommands": self._api_get_my_commands,
            "deleteMyCommands": self._api_delete_my_commands,
            "getChat": self._api_get_chat,
            "getChatMember": self._api_get_chat_member,
            "getChatAdministrators": self._api_get_chat_administrators,
            "close": self._api_close,
        }

    # ------------------------------------------------------------------
    # Lifecycle
    # ------------------------------------------------------------------

    def start(self) -> None:
        """Serve on 127.0.0.1 from a background thread with its own loop.

        A restart after :meth:`stop` reuses the previous port, so a bot that
        keeps its base URL can see Telegram go away and come back.
        """
        if self._thread is not None:
            raise RuntimeError("FakeTelegram is already running")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._port))
        self._port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self._port}"
        self.base_url = f"{self.url}/bot"
        self.file_base_url = f"{self.url}/file/bot"
        ready = threading.Event()
        self._startup_error = None
        self._closing = False
        self._thread = threading.Thread(
            target=self._serve, args=(sock, ready), name="fake-telegram", daemon=True
        )
        self._thread.start()
        if not ready.wait(10) or self._startup_error is not None:
            self._thread = None
            raise RuntimeError("FakeTelegram failed to start") from self._startup_error
        _LOG.debug("fake Telegram serving at %s", self.url)

    def stop(self) -> None:
        """Stop serving and wait for the server thread to finish."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        try:
            future.result(timeout=15)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=15)
            self._thread = None

    def __enter__(self) -> Self:
        """Start the server for the duration of a ``with`` block."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server at the end of a ``with`` block."""
        self.stop()

    def _serve(self, sock: socket.socket, ready: threading.Event) -> None:
        """Run the event loop of the server thread until stopped."""
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._startup(sock))
        except Exception as exc:
            self._startup_error = exc
            sock.close()
            loop.close()
            ready.set()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _startup(self, sock: socket.socket) -> None:
        """Start the HTTP site, the webhook client and the dispatcher."""
        app = web.Application(client_max_size=MAX_UPLOAD + 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        self._session = ClientSession(timeout=ClientTimeout(total=self.webhook_timeout))
        self._wake = asyncio.Event()
        self._spawn(self._webhook_loop())
        with self._cond:
            self._pulse_pending = False
            self._serving = True

    async def _shutdown(self) -> None:
        """Wake long polls, stop webhook work and close the HTTP server."""
        with self._cond:
            self._serving = False
            self._closing = True
            self._cond.notify_all()
        self._pulse()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def _spawn(self, coro: Any) -> None:
        """Run a background task on the server loop, keeping a reference."""
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------
    # Change notification
    # ------------------------------------------------------------------

    def _changed(self) -> None:
        """Wake every waiter after a state change; call with the lock held."""
        self._cond.notify_all()
        if self._serving and not self._pulse_pending and self._loop is not None:
            self._pulse_pending = True
            self._loop.call_soon_threadsafe(self._pulse)

    def _pulse(self) -> None:
        """Release coroutines waiting for a change; runs on the server loop."""
        with self._cond:
            self._pulse_pending = False
        if self._wake is not None:
            self._wake.set()
            self._wake = asyncio.Event()

    async def _wait_change(self, event: asyncio.Event, delay: float | None) -> None:
        """Sleep until ``event`` fires or ``delay`` seconds pass."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), delay)

    # ------------------------------------------------------------------
    # HTTP layer
    # ------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        """Answer one Bot API call, applying injected faults."""
        name = request.match_info["method"]
        name = self._names.get(name.lower(), name)
        record = ApiRequest(method=name, params={}, time=time.monotonic())
        with self._cond:
            self._requests.append(record)
            self._changed()
        status, envelope = await self._process(request, record)
        with self._cond:
            record.status, record.response = status, envelope
            record.dropped = self._take_drop(name)
            self._changed()
        if record.dropped:
            _LOG.debug("fake Telegram drops the connection of %s", name)
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=status)
        return _json_response(status, envelope)

    async def _process(
        self, request: web.Request, record: ApiRequest
    ) -> tuple[int, JSON]:
        """Run the call and turn its outcome into a status and envelope."""
        try:
            result = await self._call(request, record)
        except _ApiError as exc:
            return exc.status, exc.envelope()
        return 200, {"ok": True, "result": result}

    async def _call(self, request: web.Request, record: ApiRequest) -> Any:
        """Check the token and method, then run the method's handler."""
        params = await _read_params(request)
        record.params = _describe(params)
        if request.match_info["token"] != self.token:
            raise _ApiError(401, "Unauthorized")
        handler = self._handlers.get(record.method)
        if handler is None:
            _LOG.warning("fake Telegram: unknown method %s", record.method)
            raise _ApiError(404, "Not Found")
        await self._delay(record.method)
        self._raise_fault(record.method)
        result = handler(params)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def _delay(self, method: str) -> None:
        """Sleep for the latency configured for ``method`` or for all."""
        with self._cond:
            seconds = self._latency.get(method, self._latency.get(None, 0.0))
        if seconds > 0:
            await asyncio.sleep(seconds)

    def _raise_fault(self, method: str) -> None:
        """Raise the next injected error queued for ``method``, if any."""
        with self._cond:
            queue = self._faults.get(method)
            fault = queue.popleft() if queue else None
        if fault is not None:
            raise _ApiError(fault.status, fault.description, fault.parameters)

    def _take_drop(self, method: str) -> bool:
        """Consume one queued connection drop for ``method``."""
        left = self._drops.get(method, 0)
        if left <= 0:
            return False
        self._drops[method] = left - 1
        return True

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        """Serve the bytes of a stored file by its path."""
        path = request.match_info["path"]
        with self._cond:
            stored = self._paths.get(path)
            if request.match_info["token"] != self.token:
                stored = None
            if stored is not None:
                self._downloads.append(path)
                self._changed()
        if stored is None:
            return _json_response(404, _ApiError(404, "Not Found").envelope())
        return web.Response(body=stored.data, content_type="application/octet-stream")

    # ------------------------------------------------------------------
    # Updates: queue, getUpdates and webhook delivery
    # ------------------------------------------------------------------

    def _queue(self, update: JSON) -> int:
        """Append an update for delivery; call with the lock held."""
        update_id = update.get("update_id")
        if update_id is None:
            update_id = self._last_update_id + 1
        elif not isinstance(update_id, int) or update_id <= self._last_update_id:
            raise ValueError(f"update_id must exceed {self._last_update_id}")
        self._last_update_id = update_id
        self._pending[update_id] = {"update_id": update_id, **update}
        self._changed()
        return update_id

    def _is_allowed(self, update: JSON) -> bool:
        """Tell whether the stored allowed_updates let ``update`` through."""
        kind = _update_type(update)
        if self._allowed is None:
            return kind not in OPT_IN_UPDATES
        return kind in self._allowed

    def _window(self, size: int) -> list[tuple[int, JSON]]:
        """Return the first ``size`` deliverable updates, dropping filtered ones."""
        window: list[tuple[int, JSON]] = []
        skipped: list[int] = []
        for update_id, update in self._pending.items():
            if not self._is_allowed(update):
                skipped.append(update_id)
                continue
            window.append((update_id, update))
            if len(window) >= size:
                break
        for update_id in skipped:
            del self._pending[update_id]
        return window

    def _confirm(self, offset: int) -> None:
        """Forget updates below ``offset``; a negative one keeps the last few."""
        pending = self._pending
        if offset > 0:
            while pending and next(iter(pending)) < offset:
                pending.popitem(last=False)
        elif offset < 0:
            while len(pending) > -offset:
                pending.popitem(last=False)

    def _set_allowed(self, allowed: Any) -> None:
        """Store allowed_updates as Telegram does (an empty list resets)."""
        if allowed is None:
            return
        if not isinstance(allowed, list):
            raise _bad("can't parse allowed_updates JSON object")
        self._allowed = frozenset(map(str, allowed)) or None

    async def _api_get_updates(self, params: JSON) -> list[JSON]:
        """Return pending updates, long polling up to ``timeout`` seconds."""
        timeout = float(params.get("timeout") or 0)
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        with self._cond:
            if self._webhook is not None:
                raise _ApiError(409, CONFLICT_WEBHOOK)
            self._confirm(int(params.get("offset") or 0))
            self._set_allowed(params.get("allowed_updates"))
            self._poll_gen += 1
            self._poll_conflict = CONFLICT_POLLER
            generation = self._poll_gen
            updates = [u for _, u in self._window(limit)]
            self._changed()
        if updates or timeout <= 0:
            return updates
        return await self._long_poll(generation, limit, time.monotonic() + timeout)

    async def _long_poll(
        self, generation: int, limit: int, deadline: float
    ) -> list[JSON]:
        """Wait for updates until the deadline or a competing request."""
        while True:
            event = self._wake
            assert event is not None
            with self._cond:
                if self._closing:
                    return []
                if self._poll_gen != generation:
                    raise _ApiError(409, self._poll_conflict)
                updates = [u for _, u in self._window(limit)]
            remaining = deadline - time.monotonic()
            if updates or remaining <= 0:
                return updates
            await self._wait_change(event, remaining)

    async def _webhook_loop(self) -> None:
        """Deliver pending updates to the webhook for as long as it is set."""
        while True:
            event = self._wake
            assert event is not None
            delay = self._launch_deliveries()
            await self._wait_change(event, delay)

    def _launch_deliveries(self) -> float | None:
        """Start deliveries for due updates; return seconds to the next retry."""
        with self._cond:
            hook = self._webhook
            if hook is None or self._closing:
                return None
            now = time.monotonic()
            next_retry: float | None = None
            for update_id, update in self._window(hook.max_connections):
                if update_id in self._inflight:
                    continue
                due = self._retry_at.get(update_id, 0.0)
                if due > now:
                    next_retry = due if next_retry is None else min(next_retry, due)
                    continue
                self._inflight.add(update_id)
                self._spawn(self._deliver(hook, update_id, update))
        return None if next_retry is None else max(next_retry - now, 0.0)

    async def _deliver(self, hook: _Webhook, update_id: int, update: JSON) -> None:
        """POST one update to the webhook and record the outcome."""
        headers = {"Content-Type": "application/json"}
        if hook.secret:
            headers[SECRET_HEADER] = hook.secret
        body = json.dumps(update, ensure_ascii=False).encode("utf-8")
        error: str | None = None
        assert self._session is not None
        try:
            async with self._session.post(hook.url, data=body, headers=headers) as resp:
                await resp.read()
                if not 200 <= resp.status < 300:
                    error = (
                        f"Wrong response from the webhook: {resp.status} {resp.reason}"
                    )
        except ClientConnectorError:
            error = "Connection refused"
        except TimeoutError:
            error = "Read timeout expired"
        except ClientError as exc:
            error = f"Connection failed: {exc.__class__.__name__}"
        self._delivered(update_id, error)

    def _delivered(self, update_id: int, error: str | None) -> None:
        """Drop a delivered update or schedule its retry with backoff."""
        with self._cond:
            self._inflight.discard(update_id)
            if error is None:
                self._pending.pop(update_id, None)
                self._retry_at.pop(update_id, None)
                self._retry_delay.pop(update_id, None)
            else:
                _LOG.debug("webhook delivery of %s failed: %s", update_id, error)
                self._webhook_error = (_now(), error)
                delay = self._retry_delay.get(update_id, 0.0) * 2
                delay = min(
                    max(delay, self.webhook_retry_initial), self.webhook_retry_max
                )
                self._retry_delay[update_id] = delay
                self._retry_at[update_id] = time.monotonic() + delay
            self._changed()

    def _drop_pending(self) -> None:
        """Forget every pending update and its retry state."""
        self._pending.clear()
        self._retry_at.clear()
        self._retry_delay.clear()

    def _api_set_webhook(self, params: JSON) -> bool:
        """Store webhook settings; an empty URL removes the webhook."""
        url = str(params.get("url") or "")
        secret = params.get("secret_token")
        if url and not url.startswith(("http://", "https://")):
            raise _bad("bad webhook: invalid webhook URL specified")
        if secret is not None and not _SECRET_RE.fullmatch(str(secret)):
            raise _bad("secret token contains unallowed characters")
        connections = min(max(int(params.get("max_connections") or 40), 1), 100)
        with self._cond:
            self._set_allowed(params.get("allowed_updates"))
            if params.get("drop_pending_updates"):
                self._drop_pending()
            hook = (
                _Webhook(url, str(secret) if secret else None, connections)
                if url
                else None
            )
            self._webhook = hook
            self._webhook_error = None
            self._retry_at.clear()
            self._retry_delay.clear()
            self._poll_gen += 1
            self._poll_conflict = CONFLICT_SET_WEBHOOK
            self._changed()
        return True

    def _api_delete_webhook(self, params: JSON) -> bool:
        """Remove the webhook, optionally dropping pending updates."""
        with self._cond:
            if params.get("drop_pending_updates"):
                self._drop_pending()
            self._webhook = None
            self._webhook_error = None
            self._changed()
        return True

    def _api_get_webhook_info(self, _params: JSON) -> JSON:
        """Describe the webhook and the number of pending updates."""
        with self._cond:
            hook = self._webhook
            info: JSON = {
                "url": hook.url if hook else "",
                "has_custom_certificate": False,
                "pending_update_count": len(self._pending),
            }
            if hook is not None:
                info["max_connections"] = hook.max_connections
            if self._allowed is not None:
                info["allowed_updates"] = sorted(self._allowed)
            if self._webhook_error is not None:
                info["last_error_date"], info["last_error_message"] = (
                    self._webhook_error
                )
        return info

    # ------------------------------------------------------------------
    # Chats, users and files
    # ------------------------------------------------------------------

    def _bot_user(self) -> JSON:
        """Render the bot as a ``User`` object."""
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }

    def _chat_state(self, chat_id: int) -> _ChatState:
        """Return a chat's state, creating it for a chat never seen before."""
        state = self._chats.get(chat_id)
        if state is None:
            kind = "private" if chat_id > 0 else "group"
            if str(chat_id).startswith("-100"):
                kind = "supergroup"
            info: JSON = {"id": chat_id, "type": kind}
            if kind != "private":
                info["title"] = f"Chat {chat_id}"
            state = self._chats[chat_id] = _ChatState(info)
        return state

    def _user_chat(self, chat: FakeChat, user: FakeUser) -> _ChatState:
        """Register a chat seen through a user's action."""
        state = self._chats.get(chat.id)
        if state is None:
            info: JSON = {"id": chat.id, "type": chat.type}
            if chat.type == "private":
                info["first_name"] = user.first_name
                _put(info, "last_name", user.last_name)
                _put(info, "username", user.username)
            else:
                info["title"] = chat.title or f"Chat {chat.id}"
            state = self._chats[chat.id] = _ChatState(info)
        self._users[user.id] = user
        state.members.add(user.id)
        return state

    def _target_chat(self, params: JSON, *, write: bool = True) -> _ChatState:
        """Resolve ``chat_id``, answering like Telegram for moved or blocked chats."""
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise _bad("chat_id is empty")
        if not isinstance(chat_id, int):
            raise _bad("chat not found")
        if chat_id in self._migrated:
            parameters = {"migrate_to_chat_id": self._migrated[chat_id]}
            raise _ApiError(400, MIGRATED, parameters)
        if write and chat_id in self._blocked:
            raise _ApiError(403, BLOCKED)
        return self._chat_state(chat_id)

    def _new_file(
        self,
        data: bytes,
        kind: str,
        suffix: str,
        *,
        unique: str | None = None,
        size: int | None = None,
    ) -> _File:
        """Store bytes as a new file; call with the lock held."""
        number = next(self._file_counter)
        folder = _FILE_DIRS.get(kind, kind)
        stored = _File(
            file_id=f"{kind[:2].upper()}AC{number:06d}{secrets.token_urlsafe(9)}",
            file_unique_id=unique or f"AgAD{number:06d}",
            file_size=len(data) if size is None else size,
            file_path=f"{folder}/file_{number}{suffix}",
            data=bytes(data),
        )
        self._files[stored.file_id] = stored
        self._paths[stored.file_path] = stored
        return stored

    def _media_file(
        self, data: bytes | FileRef, kind: str, suffix: str, size: int | None
    ) -> _File:
        """Store new bytes, or re-send a stored file under a fresh file_id."""
        if not isinstance(data, FileRef):
            return self._new_file(data, kind, suffix, size=size)
        source = self._files.get(data.file_id)
        if source is None:
            raise ValueError(f"unknown file {data.file_id!r}")
        copy = dataclasses.replace(
            source,
            file_id=f"{source.file_id[:4]}{secrets.token_urlsafe(12)}",
            file_size=source.file_size if size is None else size,
        )
        self._files[copy.file_id] = copy
        return copy

    # ------------------------------------------------------------------
    # Users' actions
    # ------------------------------------------------------------------

    def add_file(
        self,
        data: bytes,
        *,
        kind: str = "voice",
        suffix: str = ".oga",
        file_unique_id: str | None = None,
    ) -> FileRef:
        """Store a file Telegram knows about and return its reference."""
        with self._cond:
            return self._new_file(data, kind, suffix, unique=file_unique_id).ref()

    def _user_message(
        self, chat: FakeChat, user: FakeUser, content: JSON, reply_to: int | None = None
    ) -> int:
        """Store a message a user sent and queue its update."""
        with self._cond:
            state = self._user_chat(chat, user)
            message_id = state.take_id()
            data: JSON = {
                "message_id": message_id,
                "from": user.to_dict(),
                "chat": state.info,
                "date": _now(),
            }
            if reply_to is not None:
                target = state.messages.get(reply_to)
                if target is None:
                    raise ValueError(f"no message {reply_to} in chat {chat.id}")
                data["reply_to_message"] = _without_reply(target.data)
            data.update(content)
            state.messages[message_id] = _Msg(data)
            self._queue({"message": data})
            return message_id

    def send_voice(
        self,
        chat: FakeChat,
        user: FakeUser,
        data: bytes | FileRef,
        *,
        duration: int,
        mime_type: str = "audio/ogg",
        forward_origin: JSON | None = None,
        reply_to: int | None = None,
        file_size: int | None = None,
    ) -> int:
        """Have ``user`` send a voice note; return its message_id."""
        with self._cond:
            stored = self._media_file(data, "voice", ".oga", file_size)
            voice = stored.media() | {"duration": duration, "mime_type": mime_type}
            content: JSON = {"voice": voice}
            _put(content, "forward_origin", forward_origin)
            return self._user_message(chat, user, content, reply_to)

    def send_audio(
        self,
        chat: FakeChat,
        user: FakeUser,
        data: bytes | FileRef,
        *,
        duration: int,
        mime_type: str = "audio/mpeg",
        file_name: str = "audio.mp3",
        title: str | None = None,
        file_size: int | None = None,
        performer: str | None = None,
    ) -> int:
        """Have ``user`` send a music file; return its message_id."""
        with self._cond:
            stored = self._media_file(data, "audio", _suffix(file_name), file_size)
            audio = stored.media() | {"duration": duration, "mime_type": mime_type}
            audio["file_name"] = file_name
            _put(audio, "title", title)
            _put(audio, "performer", performer)
            return self._user_message(chat, user, {"audio": audio})

    def send_video_note(
        self,
        chat: FakeChat,
        user: FakeUser,
        data: bytes | FileRef,
        *,
        duration: int,
        length: int = 240,
        file_size: int | None = None,
    ) -> int:
        """Have ``user`` send a round video note; return its message_id."""
        with self._cond:
            stored = self._media_file(data, "video_note", ".mp4", file_size)
            note = stored.media() | {"length": length, "duration": duration}
            return self._user_message(chat, user, {"video_note": note})

    def send_document(
        self,
        chat: FakeChat,
        user: FakeUser,
        data: bytes | FileRef,
        *,
        file_name: str,
        mime_type: str,
        file_size: int | None = None,
    ) -> int:
        """Have ``user`` send a file as a document; return its message_id."""
        with self._cond:
            stored = self._media_file(data, "document", _suffix(file_name), file_size)
            document = stored.media() | {"file_name": file_name, "mime_type": mime_type}
            return self._user_message(chat, user, {"document": document})

    def send_text(
        self, chat: FakeChat, user: FakeUser, text: str, *, reply_to: int | None = None
    ) -> int:
        """Have ``user`` send text; a leading /command gets its entity."""
        content: JSON = {"text": text}
        match = _COMMAND_RE.match(text)
        if match:
            length = _utf16_len(match.group())
            content["entities"] = [
                {"type": "bot_command", "offset": 0, "length": length}
            ]
        return self._user_message(chat, user, content, reply_to)

    def send_sticker(self, chat: FakeChat, user: FakeUser) -> int:
        """Have ``user`` send a sticker; return its message_id."""
        with self._cond:
            stored = self._new_file(b"RIFF\x00\x00\x00\x00WEBPVP8 ", "sticker", ".webp")
            sticker = stored.media() | {
                "type": "regular",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
                "emoji": "👍",
                "set_name": "VoicioTestStickers",
            }
            return self._user_message(chat, user, {"sticker": sticker})

    def send_photo(self, chat: FakeChat, user: FakeUser) -> int:
        """Have ``user`` send a photo in three sizes; return its message_id."""
        with self._cond:
            sizes: list[JSON] = []
            for width, height in ((90, 68), (320, 240), (800, 600)):
                data = b"\xff\xd8\xff\xe0" + bytes(width // 10)
                stored = self._new_file(data, "photo", ".jpg")
                sizes.append(stored.media() | {"width": width, "height": height})
            return self._user_message(chat, user, {"photo": sizes})

    def press_button(
        self, chat: FakeChat, user: FakeUser, message_id: int, data: str | bytes
    ) -> str:
        """Have ``user`` press a button of a bot message; return the query id."""
        payload = data.decode("utf-8") if isinstance(data, bytes) else data
        with self._cond:
            state = self._chats.get(chat.id)
            msg = state.messages.get(message_id) if state else None
            if state is None or msg is None or msg.sent is None:
                raise ValueError(f"no bot message {message_id} in chat {chat.id}")
            message = dict(msg.data)
            if msg.deleted:
                message = {"chat": state.info, "message_id": message_id, "date": 0}
            self._users[user.id] = user
            query_id = str(4_000_000_000_000_000 + next(self._callback_counter))
            self._callbacks[query_id] = False
            query: JSON = {
                "id": query_id,
                "from": user.to_dict(),
                "message": message,
                "chat_instance": str(-(abs(chat.id) * 7919 + self.bot_id)),
                "data": payload,
            }
            self._queue({"callback_query": query})
            return query_id

    def push_update(self, update: JSON) -> int:
        """Queue a raw update, assigning update_id when missing."""
        with self._cond:
            return self._queue(dict(update))

    def migrate_chat(self, old_chat_id: int, new_chat_id: int) -> None:
        """Upgrade a group to a supergroup, with the two service messages."""
        with self._cond:
            old = self._chat_state(old_chat_id)
            title = old.info.get("title") or f"Chat {new_chat_id}"
            new = self._chats.get(new_chat_id)
            if new is None:
                info = {"id": new_chat_id, "type": "supergroup", "title": title}
                new = self._chats[new_chat_id] = _ChatState(info)
            new.members |= old.members
            if old_chat_id in self._admins:
                self._admins[new_chat_id] = list(self._admins[old_chat_id])
            self._migrated[old_chat_id] = new_chat_id
            self._service_message(old, {"migrate_to_chat_id": new_chat_id})
            self._service_message(new, {"migrate_from_chat_id": old_chat_id})

    def _service_message(self, state: _ChatState, content: JSON) -> None:
        """Store and queue a service message of ``state``."""
        message_id = state.take_id()
        data = {"message_id": message_id, "chat": state.info, "date": _now()} | content
        state.messages[message_id] = _Msg(data)
        self._queue({"message": data})

    def set_admins(self, chat_id: int, user_ids: list[int]) -> None:
        """Set a chat's administrators; the first one is the creator."""
        with self._cond:
            self._admins[chat_id] = list(user_ids)
            self._changed()

    def block(self, chat_id: int) -> None:
        """Have the user of ``chat_id`` block the bot (403 on every send)."""
        with self._cond:
            self._blocked.add(chat_id)
            self._changed()

    def unblock(self, chat_id: int) -> None:
        """Undo :meth:`block`."""
        with self._cond:
            self._blocked.discard(chat_id)
            self._changed()

    # ------------------------------------------------------------------
    # What the bot did
    # ------------------------------------------------------------------

    def bot_messages(
        self, chat_id: int, *, include_deleted: bool = False
    ) -> list[SentMessage]:
        """List the bot's messages in a chat, oldest first."""
        with self._cond:
            state = self._chats.get(chat_id)
            if state is None:
                return []
            sent = [state.messages[i].sent for i in state.bot_ids]
            return [
                m for m in sent if m is not None and (include_deleted or not m.deleted)
            ]

    def reactions(self, chat_id: int, message_id: int) -> list[str]:
        """List the reaction emojis the bot currently has on a message."""
        with self._cond:
            state = self._chats.get(chat_id)
            msg = state.messages.get(message_id) if state else None
            return list(msg.reactions) if msg else []

    def callback_answers(self) -> list[CallbackAnswer]:
        """List every answerCallbackQuery call in order."""
        with self._cond:
            return list(self._answers)

    def requests(self, method: str | None = None) -> list[ApiRequest]:
        """List API calls in arrival order, optionally of one method."""
        with self._cond:
            if method is None:
                return list(self._requests)
            name = self._names.get(method.lower(), method)
            return [r for r in self._requests if r.method == name]

    def downloads(self) -> list[str]:
        """List the file paths the bot downloaded, in order."""
        with self._cond:
            return list(self._downloads)

    def commands(
        self, *, scope: JSON | None = None, language_code: str = ""
    ) -> list[JSON]:
        """Return the command list stored for a scope and language."""
        params = {"scope": scope, "language_code": language_code}
        with self._cond:
            return [dict(c) for c in self._commands.get(_scope_key(params), [])]

    def pending_updates(self) -> int:
        """Count updates not yet confirmed by offset or delivered with 2xx."""
        with self._cond:
            return len(self._pending)

    def webhook_url(self) -> str | None:
        """Return the URL of the active webhook, None in polling mode."""
        with self._cond:
            return self._webhook.url if self._webhook else None

    def wait_until(
        self,
        predicate: Callable[[], bool],
        timeout: float = 10.0,
        what: str = "condition",
    ) -> None:
        """Block until ``predicate`` holds, re-checking on every state change."""
        with self._cond:
            if not self._cond.wait_for(predicate, timeout):
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def wait_for_messages(
        self, chat_id: int, count: int, timeout: float = 10.0
    ) -> list[SentMessage]:
        """Wait until the bot has ``count`` live messages in a chat; list them."""

        def enough() -> bool:
            state = self._chats.get(chat_id)
            return state is not None and state.live >= count

        what = f"{count} bot message(s) in chat {chat_id}"
        self.wait_until(enough, timeout, what)
        return self.bot_messages(chat_id)

    # ------------------------------------------------------------------
    # Fault injection
    # ------------------------------------------------------------------

    def fail(
        self,
        method: str,
        *,
        times: int = 1,
        status: int = 429,
        description: str = "Too Many Requests: retry after 1",
        parameters: JSON | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with an error.

        A 429 without ``parameters`` gets ``retry_after`` read from the
        description, as Telegram always sends it; pass ``{}`` to omit it.
        """
        if parameters is None and status == 429:
            match = re.search(r"retry after (\d+)", description)
            parameters = {"retry_after": int(match.group(1))} if match else None
        fault = _Fault(status, description, parameters)
        name = self._names.get(method.lower(), method)
        with self._cond:
            self._faults.setdefault(name, deque()).extend([fault] * times)

    def set_latency(self, seconds: float, method: str | None = None) -> None:
        """Delay answers to ``method`` (or to every method) by ``seconds``.

        A per-method latency replaces the global one for that method; zero
        removes the setting.
        """
        name = None if method is None else self._names.get(method.lower(), method)
        with self._cond:
            if seconds > 0:
                self._latency[name] = seconds
            else:
                self._latency.pop(name, None)

    def drop_connection(self, method: str, *, times: int = 1) -> None:
        """Process the next ``times`` calls but close without answering."""
        name = self._names.get(method.lower(), method)
        with self._cond:
            self._drops[name] = self._drops.get(name, 0) + times

    # ------------------------------------------------------------------
    # Bot API methods
    # ------------------------------------------------------------------

    def _api_get_me(self, _params: JSON) -> JSON:
        """Describe the bot."""
        return self._bot_user() | {
            "can_join_groups": True,
            "can_read_all_group_messages": self.can_read_all_group_messages,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _api_close(self, _params: JSON) -> bool:
        """Accept ``close``; the fake keeps serving."""
        return True

    def _reply_target(self, state: _ChatState, params: JSON) -> _Msg | None:
        """Resolve the message a send replies to, if any."""
        reply = params.get("reply_parameters")
        allow = bool(params.get("allow_sending_without_reply"))
        if isinstance(reply, dict):
            message_id = reply.get("message_id")
            allow = allow or bool(reply.get("allow_sending_without_reply"))
        else:
            message_id = params.get("reply_to_message_id")
        if message_id is None:
            return None
        target = state.messages.get(message_id) if isinstance(message_id, int) else None
        if target is None or target.deleted:
            if allow:
                return None
            raise _bad("message to be replied not found")
        return target

    def _store_sent(
        self,
        state: _ChatState,
        text: _Text,
        markup: JSON | None,
        reply: _Msg | None,
        document: SentDocument | None = None,
    ) -> _Msg:
        """Store a message the bot sent; call with the lock held."""
        message_id = state.take_id()
        sent = SentMessage(
            message_id=message_id,
            chat_id=int(state.info["id"]),
            text=text.plain,
            raw_text=text.raw,
            parse_mode=text.parse_mode,
            entities=text.entities,
            reply_to_message_id=reply.data["message_id"] if reply else None,
            reply_markup=markup,
            buttons=_buttons(markup),
            document=document,
            deleted=False,
            edits=0,
            date=_now(),
        )
        data: JSON = {"message_id": message_id, "from": self._bot_user()}
        data |= {"chat": state.info, "date": sent.date}
        if reply is not None:
            data["reply_to_message"] = _without_reply(reply.data)
        msg = _Msg(data, sent)
        self._render(msg)
        state.messages[message_id] = msg
        state.bot_ids.append(message_id)
        state.live += 1
        self._changed()
        return msg

    def _render(self, msg: _Msg) -> None:
        """Refresh the Message object of a bot message from its snapshot."""
        sent = msg.sent
        assert sent is not None
        data = msg.data
        for key in ("text", "entities", "caption", "caption_entities", "reply_markup"):
            data.pop(key, None)
        doc = sent.document
        if doc is None:
            data["text"] = sent.text
            if sent.entities:
                data["entities"] = sent.entities
        else:
            data["document"] = {
                "file_id": doc.file_id,
                "file_unique_id": doc.file_unique_id,
                "file_name": doc.file_name,
                "mime_type": doc.mime_type,
                "file_size": len(doc.data),
            }
            if sent.text:
                data["caption"] = sent.text
            if sent.entities:
                data["caption_entities"] = sent.entities
        _put(data, "reply_markup", _inline(sent.reply_markup))
        if sent.edits:
            data["edit_date"] = _now()

    def _api_send_message(self, params: JSON) -> JSON:
        """Send a text message."""
        with self._cond:
            state = self._target_chat(params)
            text = _format(params, "text", caption=False)
            markup = _check_markup(params.get("reply_markup"))
            reply = self._reply_target(state, params)
            return self._store_sent(state, text, markup, reply).data

    def _api_send_document(self, params: JSON) -> JSON:
        """Send a document, uploaded in multipart or given by file_id."""
        with self._cond:
            state = self._target_chat(params)
            stored, file_name, mime = self._document_source(params.get("document"))
            text = _format(params, "caption", caption=True)
            markup = _check_markup(params.get("reply_markup"))
            reply = self._reply_target(state, params)
            document = SentDocument(
                file_name=file_name,
                data=stored.data,
                caption=text.plain or None,
                mime_type=mime,
                file_id=stored.file_id,
                file_unique_id=stored.file_unique_id,
            )
            return self._store_sent(state, text, markup, reply, document).data

    def _document_source(self, document: Any) -> tuple[_File, str, str]:
        """Resolve the ``document`` field to a stored file, name and type."""
        if isinstance(document, _Upload):
            if not document.data:
                raise _bad("file must be non-empty")
            name = document.filename or "document"
            stored = self._new_file(document.data, "document", _suffix(name))
            return stored, name, _guess_mime(name, document.content_type)
        if isinstance(document, str) and document in self._files:
            stored = self._files[document]
            name = stored.file_path.rpartition("/")[2]
            return stored, name, _guess_mime(name, None)
        if not document:
            raise _bad("there is no document in the request")
        raise _bad("wrong file identifier/HTTP URL specified")

    def _editable(self, params: JSON) -> _Msg:
        """Find the bot message an edit targets."""
        if params.get("inline_message_id"):
            raise _bad("inline messages are not supported by the fake")
        state = self._target_chat(params)
        message_id = params.get("message_id")
        msg = state.messages.get(message_id) if isinstance(message_id, int) else None
        if msg is None or msg.deleted:
            raise _bad("message to edit not found")
        if msg.sent is None:
            raise _bad("message can't be edited")
        return msg

    def _apply_edit(self, msg: _Msg, **changes: Any) -> JSON:
        """Replace a bot message's snapshot and refresh its Message object."""
        assert msg.sent is not None
        msg.sent = dataclasses.replace(msg.sent, edits=msg.sent.edits + 1, **changes)
        self._render(msg)
        self._changed()
        return msg.data

    def _api_edit_message_text(self, params: JSON) -> JSON:
        """Edit a bot message's text; an omitted keyboard is removed."""
        with self._cond:
            msg = self._editable(params)
            sent = msg.sent
            assert sent is not None
            if sent.document is not None:
                raise _bad("there is no text in the message to edit")
            text = _format(params, "text", caption=False)
            markup = _check_markup(params.get("reply_markup"))
            if markup is None and _inline(sent.reply_markup) is None:
                markup = sent.reply_markup
            same_text = (text.plain, text.entities) == (sent.text, sent.entities)
            if same_text and _inline(markup) == _inline(sent.reply_markup):
                raise _bad(NOT_MODIFIED)
            return self._apply_edit(
                msg,
                text=text.plain,
                raw_text=text.raw,
                parse_mode=text.parse_mode,
                entities=text.entities,
                reply_markup=markup,
                buttons=_buttons(markup),
            )

    def _api_edit_message_reply_markup(self, params: JSON) -> JSON:
        """Replace or remove a bot message's inline keyboard."""
        with self._cond:
            msg = self._editable(params)
            sent = msg.sent
            assert sent is not None
            markup = _check_markup(params.get("reply_markup"))
            if markup is not None and _inline(markup) is None:
                raise _bad("inline keyboard expected")
            if markup == _inline(sent.reply_markup):
                raise _bad(NOT_MODIFIED)
            return self._apply_edit(msg, reply_markup=markup, buttons=_buttons(markup))

    def _api_delete_message(self, params: JSON) -> bool:
        """Delete a message of the bot, or of a user where allowed."""
        with self._cond:
            state = self._target_chat(params, write=False)
            message_id = params.get("message_id")
            msg = (
                state.messages.get(message_id) if isinstance(message_id, int) else None
            )
            if msg is None or msg.deleted:
                raise _bad("message to delete not found")
            is_admin = self.bot_id in self._admins.get(int(state.info["id"]), [])
            if msg.sent is None and state.type != "private" and not is_admin:
                raise _bad("message can't be deleted")
            msg.deleted = True
            if msg.sent is not None:
                msg.sent = dataclasses.replace(msg.sent, deleted=True)
                state.live -= 1
            self._changed()
        return True

    def _api_set_message_reaction(self, params: JSON) -> bool:
        """Set (or clear) the bot's reaction on a message."""
        with self._cond:
            state = self._target_chat(params)
            message_id = params.get("message_id")
            msg = (
                state.messages.get(message_id) if isinstance(message_id, int) else None
            )
            if msg is None or msg.deleted:
                raise _bad("message to react not found")
            msg.reactions = _reactions(params.get("reaction"))
            self._changed()
        return True

    def _api_send_chat_action(self, params: JSON) -> bool:
        """Accept a valid chat action."""
        with self._cond:
            self._target_chat(params)
        if params.get("action") not in CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        return True

    def _api_answer_callback_query(self, params: JSON) -> bool:
        """Answer a callback query once."""
        query_id = str(params.get("callback_query_id") or "")
        text = params.get("text")
        if text is not None and len(str(text)) > MAX_CALLBACK_ANSWER:
            raise _bad("MESSAGE_TOO_LONG")
        with self._cond:
            if self._callbacks.get(query_id, True):
                raise _bad(QUERY_INVALID)
            self._callbacks[query_id] = True
            answer = CallbackAnswer(
                query_id, text, bool(params.get("show_alert")), params.get("url")
            )
            self._answers.append(answer)
            self._changed()
        return True

    def _api_get_file(self, params: JSON) -> JSON:
        """Describe a file so the bot can download it."""
        file_id = str(params.get("file_id") or "")
        with self._cond:
            stored = self._files.get(file_id)
        if stored is None:
            raise _bad("wrong file_id or the file is temporarily unavailable")
        if stored.file_size > MAX_DOWNLOAD:
            raise _bad("file is too big")
        return dataclasses.asdict(stored.ref())

    def _api_set_my_commands(self, params: JSON) -> bool:
        """Store the command list of a scope and language."""
        commands = _check_commands(params.get("commands"))
        key = _scope_key(params)
        with self._cond:
            if commands:
                self._commands[key] = commands
            else:
                self._commands.pop(key, None)
            self._changed()
        return True

    def _api_get_my_commands(self, params: JSON) -> list[JSON]:
        """Return the command list of a scope and language."""
        key = _scope_key(params)
        with self._cond:
            return [dict(c) for c in self._commands.get(key, [])]

    def _api_delete_my_commands(self, params: JSON) -> bool:
        """Delete the command list of a scope and language."""
        key = _scope_key(params)
        with self._cond:
            self._commands.pop(key, None)
            self._changed()
        return True

    def _api_get_chat(self, params: JSON) -> JSON:
        """Describe a chat as ``ChatFullInfo``."""
        with self._cond:
            state = self._target_chat(params, write=False)
            info = dict(state.info)
        info |= {"accent_color_id": 0, "max_reaction_count": 11}
        info["accepted_gift_types"] = {
            "unlimited_gifts": False,
            "limited_gifts": False,
            "unique_gifts": False,
            "premium_subscription": False,
            "gifts_from_channels": False,
        }
        return info

    def _user_dict(self, user_id: int) -> JSON:
        """Render a known user, the bot, or a placeholder for an unknown id."""
        if user_id == self.bot_id:
            return self._bot_user()
        user = self._users.get(user_id)
        if user is not None:
            return user.to_dict()
        return {"id": user_id, "is_bot": False, "first_name": f"User {user_id}"}

    def _member(self, state: _ChatState, user_id: int) -> JSON:
        """Describe one user's membership in a chat."""
        user = self._user_dict(user_id)
        admins = self._admins.get(int(state.info["id"]), [])
        if user_id in admins and admins[0] == user_id:
            return {"status": "creator", "user": user, "is_anonymous": False}
        if user_id in admins:
            return _administrator(user)
        in_chat = user_id in state.members or user_id == self.bot_id
        if state.type == "private":
            in_chat = user_id in (state.info["id"], self.bot_id)
        return {"status": "member" if in_chat else "left", "user": user}

    def _api_get_chat_member(self, params: JSON) -> JSON:
        """Describe a member of a chat."""
        user_id = params.get("user_id")
        if not isinstance(user_id, int):
            raise _bad("invalid user_id specified")
        with self._cond:
            state = self._target_chat(params, write=False)
            return self._member(state, user_id)

    def _api_get_chat_administrators(self, params: JSON) -> list[JSON]:
        """List the administrators of a group chat."""
        with self._cond:
            state = self._target_chat(params, write=False)
            if state.type == "private":
                raise _bad("there are no administrators in the private chat")
            admins = self._admins.get(int(state.info["id"]), [])
            return [self._member(state, user_id) for user_id in admins]


def _administrator(user: JSON) -> JSON:
    """Render an administrator with the usual group rights."""
    rights = dict.fromkeys(
        (
            "can_manage_chat",
            "can_delete_messages",
            "can_manage_video_chats",
            "can_restrict_members",
            "can_change_info",
            "can_invite_users",
            "can_pin_messages",
        ),
        True,
    )
    rights |= dict.fromkeys(
        (
            "can_be_edited",
            "is_anonymous",
            "can_promote_members",
            "can_post_stories",
            "can_edit_stories",
            "can_delete_stories",
        ),
        False,
    )
    return {"status": "administrator", "user": user} | rights
