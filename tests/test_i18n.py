"""Every user-facing string comes from a catalog, in every language."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from voicio.actors.keyboards import SUMMARY_LANGUAGES
from voicio.actors.ports import DeliveryError, FileTooBig
from voicio.audio import errors as audio_errors
from voicio.bot.app import COMMANDS
from voicio.domain import GroupPolicy, Mode
from voicio.i18n import available_languages, load_catalog, pick_language, translator
from voicio.model import errors as model_errors

SOURCE = Path(__file__).resolve().parents[1] / "voicio"


def test_every_catalog_has_exactly_the_same_keys() -> None:
    catalogs = {lang: load_catalog(lang) for lang in available_languages()}
    reference = set(catalogs["en"])

    for language, catalog in catalogs.items():
        assert set(catalog) == reference, f"{language} differs from en"
        assert all(catalog.values()), f"{language} has empty translations"


def test_placeholders_match_across_languages() -> None:
    english = load_catalog("en")
    for language in available_languages():
        for key, text in load_catalog(language).items():
            found = set(re.findall(r"{(\w+)}", str(text)))
            assert found == set(re.findall(r"{(\w+)}", str(english[key]))), key


def test_every_key_used_in_code_exists() -> None:
    used: set[str] = set()
    for path in SOURCE.rglob("*.py"):
        code = path.read_text(encoding="utf-8")
        used |= set(re.findall(r"\bt(?:\.plural)?\(\s*\"([a-z_]+\.[a-z_.]+)\"", code))
    assert len(used) > 40, "the scan found too few keys; the pattern is wrong"
    assert used <= set(load_catalog("en")), used - set(load_catalog("en"))


def test_keys_built_at_run_time_exist_for_every_value() -> None:
    keys = {f"mode.{mode.value}" for mode in Mode}
    keys |= {f"group_policy.{policy.value}" for policy in GroupPolicy}
    keys |= {
        f"language.{code}" for code in (*SUMMARY_LANGUAGES, *available_languages())
    }
    keys |= {f"commands.{name}" for name in COMMANDS}
    keys |= {f"error.{reason}" for reason in failure_reasons()}
    keys |= {f"settings.{field}" for field in ("language", "summary_language", "mode")}

    assert keys <= set(load_catalog("en")), keys - set(load_catalog("en"))


def failure_reasons() -> set[str]:
    """Every `reason` an error class can carry, plus the actors' own."""
    classes = [*vars(model_errors).values(), *vars(audio_errors).values()]
    reasons = {
        getattr(cls, "reason", None)
        for cls in classes
        if isinstance(cls, type) and issubclass(cls, Exception)
    }
    reasons |= {DeliveryError.reason, FileTooBig.reason, "internal", "abandoned"}
    return {r for r in reasons if r}


def test_russian_plurals_follow_the_number() -> None:
    t = translator("ru")

    forms = [t.plural("forget.done", n) for n in (1, 2, 5, 11, 21, 22, 25)]

    assert forms == [
        "Удалена 1 заметка.",
        "Удалены 2 заметки.",
        "Удалено 5 заметок.",
        "Удалено 11 заметок.",
        "Удалена 21 заметка.",
        "Удалены 22 заметки.",
        "Удалено 25 заметок.",
    ]


@pytest.mark.parametrize(
    ("candidates", "expected"),
    [
        (("ru-RU",), "ru"),
        ((None, "en-GB"), "en"),
        (("de",), "en"),
        ((None, "ru"), "ru"),
    ],
)
def test_language_choice_falls_back_to_english(
    candidates: tuple[str | None, ...], expected: str
) -> None:
    assert pick_language(*candidates) == expected


def test_russian_gets_translated_text() -> None:
    assert translator("ru")("button.back") == "« Назад"
    assert translator("en")("button.back") == "« Back"
