"""Every user-facing string comes from a catalog, in every language."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from voicio.i18n import available_languages, load_catalog, pick_language, translator

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
        used |= set(re.findall(r"\bt\(\s*\"([a-z_]+\.[a-z_.]+)\"", code))
    assert used, "the scan found no keys; the pattern is wrong"
    assert used <= set(load_catalog("en")), used - set(load_catalog("en"))


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
