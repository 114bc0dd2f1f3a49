"""Telegram HTML that Telegram always accepts, however odd the model's text."""

from __future__ import annotations

from datetime import UTC, datetime

from voicio import render
from voicio.domain import Mode
from voicio.i18n import translator

NASTY = "if a < b && c > d: print(`x` * _y_) <b>bold?</b> &amp; "


def test_model_text_is_escaped_not_interpreted() -> None:
    fragment = render.text(NASTY)

    assert "<b>" not in fragment.html
    assert "&lt;b&gt;" in fragment.html
    assert "&amp;amp;" in fragment.html
    assert fragment.visible == len(NASTY)


def test_visible_length_counts_utf16_units_like_telegram() -> None:
    assert render.visible_length("abc") == 3
    assert render.visible_length("🎙") == 2
    assert render.visible_length("привет") == 6


def test_split_prefers_sentence_boundaries() -> None:
    sentences = [f"Sentence number {i} is here." for i in range(400)]

    pieces = render.split_text(" ".join(sentences), 1000)

    assert all(render.visible_length(p) <= 1000 for p in pieces)
    assert all(p.endswith(".") for p in pieces)
    assert " ".join(pieces) == " ".join(sentences)


def test_split_cuts_words_only_when_a_word_is_too_long() -> None:
    word = "x" * 2500

    pieces = render.split_text(f"short {word} end", 1000)

    assert all(render.visible_length(p) <= 1000 for p in pieces)
    assert "".join(pieces).replace(" ", "") == f"short{word}end"


def test_long_summary_becomes_several_messages_within_the_limit() -> None:
    t = translator("en")
    header = render.note_header(
        t,
        sender="Alice",
        sent_at=datetime(2026, 1, 1, 9, 30, tzinfo=UTC),
        mode=Mode.DETAILED,
        forward_origin=None,
    )
    summary = " ".join(f"Point {i} & <tag> matters." for i in range(500))

    rendered = render.note_reply(t, header, Mode.DETAILED, summary, None)

    assert rendered.document is None
    assert len(rendered.parts) > 1
    assert rendered.parts[0].startswith(
        "🎙 <b>Alice</b> · 09:30 · <i>Detailed summary</i>"
    )


def test_transcript_goes_in_an_expandable_quote_in_combined_mode() -> None:
    t = translator("ru")
    header = render.note_header(
        t,
        sender=None,
        sent_at=datetime(2026, 1, 1, tzinfo=UTC),
        mode=Mode.COMBINED,
        forward_origin="Борис",
    )

    rendered = render.note_reply(t, header, Mode.COMBINED, "Коротко.", "Полный текст.")

    assert rendered.parts == [
        "🎙 <b>Кто-то</b> · 00:00 · <i>Резюме + расшифровка</i>\n"
        "↪ переслано от Борис\n\nКоротко.\n\n"
        "<b>Расшифровка</b>\n<blockquote expandable>Полный текст.</blockquote>"
    ]


def test_very_long_text_is_sent_as_a_file() -> None:
    t = translator("en")
    header = render.note_header(
        t,
        sender="A",
        sent_at=datetime(2026, 1, 1, tzinfo=UTC),
        mode=Mode.COMBINED,
        forward_origin=None,
    )
    transcript = "Word. " * 5000

    rendered = render.note_reply(t, header, Mode.COMBINED, "Sum.", transcript)

    assert rendered.document is not None
    name, data = rendered.document
    assert name.endswith(".txt")
    assert data.decode().startswith("Sum.")
    assert len(rendered.parts) == 1
