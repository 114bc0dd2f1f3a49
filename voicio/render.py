"""Turn notes and summaries into Telegram HTML that Telegram always accepts.

Model text is escaped, never interpreted, and every message stays within
Telegram's 4096-character limit, which counts visible characters (UTF-16
code units after tags and entities are parsed). Text too long for a few
messages becomes a .txt file instead.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime

from voicio.domain import Mode
from voicio.i18n import Translator

MESSAGE_LIMIT = 4096
# Beyond this many messages a reply is easier to read as a file.
MAX_PARTS = 4


def visible_length(text: str) -> int:
    """Count characters the way Telegram does (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


@dataclass(frozen=True)
class Fragment:
    """A piece of HTML and the length Telegram will count for it."""

    html: str
    visible: int

    def __add__(self, other: Fragment) -> Fragment:
        return Fragment(self.html + other.html, self.visible + other.visible)


def text(value: str) -> Fragment:
    """Plain text, escaped."""
    return Fragment(html.escape(value, quote=False), visible_length(value))


def bold(inner: Fragment) -> Fragment:
    return Fragment(f"<b>{inner.html}</b>", inner.visible)


def italic(inner: Fragment) -> Fragment:
    return Fragment(f"<i>{inner.html}</i>", inner.visible)


def quote(inner: Fragment, *, expandable: bool = False) -> Fragment:
    tag = "blockquote expandable" if expandable else "blockquote"
    return Fragment(f"<{tag}>{inner.html}</blockquote>", inner.visible)


def join(*fragments: Fragment, sep: str = "") -> Fragment:
    result = Fragment("", 0)
    for index, fragment in enumerate(fragments):
        if index and sep:
            result += text(sep)
        result += fragment
    return result


_SENTENCE_END = re.compile(r"(?<=[.!?…。])\s+|\n+")


def split_text(value: str, limit: int) -> list[str]:
    """Split `value` into pieces of at most `limit` visible characters.

    Cuts fall between sentences where possible, else between words, and only
    as a last resort inside a word.
    """
    if visible_length(value) <= limit:
        return [value]
    pieces: list[str] = []
    current = ""
    for unit in _units(value, limit):
        candidate = f"{current} {unit}" if current else unit
        if visible_length(candidate) <= limit:
            current = candidate
        else:
            pieces.append(current)
            current = unit
    if current:
        pieces.append(current)
    return pieces


def _units(value: str, limit: int) -> list[str]:
    """Break text into sentences, then words, then slices, each within `limit`."""
    units: list[str] = []
    for sentence in filter(None, (s.strip() for s in _SENTENCE_END.split(value))):
        if visible_length(sentence) <= limit:
            units.append(sentence)
            continue
        for word in sentence.split():
            units.extend(_slices(word, limit))
    return units


def _slices(word: str, limit: int) -> list[str]:
    slices: list[str] = []
    current = ""
    for char in word:
        if visible_length(current + char) > limit:
            slices.append(current)
            current = ""
        current += char
    return [*slices, current] if current else slices


@dataclass(frozen=True)
class Rendered:
    """A reply as messages, or as a file with a caption when too long."""

    parts: list[str]
    document: tuple[str, bytes] | None = None


def mode_label(t: Translator, mode: Mode) -> str:
    return t(f"mode.{mode.value}")


def note_header(
    t: Translator,
    *,
    sender: str | None,
    sent_at: datetime,
    mode: Mode,
    forward_origin: str | None,
) -> Fragment:
    """The first line of a note's reply: who, when, which mode."""
    who = bold(text(sender or t("note.unknown_sender")))
    line = join(
        text("🎙 "),
        who,
        text(f" · {sent_at:%H:%M} · "),
        italic(text(mode_label(t, mode))),
    )
    if forward_origin:
        line = join(
            line, text(t("note.forwarded_from", origin=forward_origin)), sep="\n"
        )
    return line


def note_reply(
    t: Translator,
    header: Fragment,
    mode: Mode,
    summary: str,
    transcript: str | None,
) -> Rendered:
    """Lay out a note's reply: header, summary, and the transcript when asked."""
    body = summary.strip() or t("note.nothing_heard")
    show_transcript = mode is Mode.COMBINED and bool(transcript)
    first_budget = MESSAGE_LIMIT - header.visible - 2
    summary_parts = split_text(body, min(first_budget, MESSAGE_LIMIT))
    parts = [join(header, text(summary_parts[0]), sep="\n\n")]
    parts += [text(piece) for piece in summary_parts[1:]]
    if show_transcript:
        assert transcript is not None
        parts = _append_quoted(parts, t("note.transcript_title"), transcript)
    if len(parts) > MAX_PARTS:
        return _as_document(
            t, header, mode, body, transcript if show_transcript else None
        )
    return Rendered([part.html for part in parts])


def _append_quoted(
    parts: list[Fragment], title: str, transcript: str
) -> list[Fragment]:
    """Add the transcript in expandable quotes, sharing the last message if it fits."""
    label = bold(text(title))
    overhead = label.visible + 2
    pieces = split_text(transcript, MESSAGE_LIMIT - overhead)
    result = list(parts)
    for index, piece in enumerate(pieces):
        block = quote(text(piece), expandable=True)
        if index == 0:
            block = join(label, block, sep="\n")
            if result[-1].visible + 2 + block.visible <= MESSAGE_LIMIT:
                result[-1] = join(result[-1], block, sep="\n\n")
                continue
        result.append(block)
    return result


def _as_document(
    t: Translator, header: Fragment, mode: Mode, summary: str, transcript: str | None
) -> Rendered:
    caption = join(header, text(t("note.long_as_file")), sep="\n\n")
    body = summary if transcript is None else f"{summary}\n\n{transcript}"
    name = f"voicio-{mode.value}.txt"
    return Rendered([caption.html], (name, body.encode("utf-8")))


def long_text(t: Translator, title: str, value: str) -> Rendered:
    """Lay out a long plain text (a transcript) under a bold title."""
    head = bold(text(title))
    pieces = split_text(value, MESSAGE_LIMIT - head.visible - 2)
    parts = [join(head, text(pieces[0]), sep="\n\n"), *(text(p) for p in pieces[1:])]
    if len(parts) > MAX_PARTS:
        caption = join(head, text(t("note.long_as_file")), sep="\n\n")
        return Rendered(
            [caption.html], ("voicio-transcript.txt", value.encode("utf-8"))
        )
    return Rendered([part.html for part in parts])
