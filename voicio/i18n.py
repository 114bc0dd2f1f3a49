"""Message catalogs: every word a user reads comes from `voicio/locales/*.po`.

Catalogs are keyed by message id (`note.header`, `error.too_big`) and read
at start-up with Babel, so no compiled `.mo` files are kept in the repository.
"""

from __future__ import annotations

import gettext
import io
from functools import cache
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALES_DIR = Path(__file__).parent / "locales"
DEFAULT_LANGUAGE = "en"


class Translator:
    """Look up messages in one language, falling back to English."""

    def __init__(self, language: str, translations: gettext.NullTranslations) -> None:
        self.language = language
        self._translations = translations

    def __call__(self, key: str, **values: Any) -> str:
        """Return the message `key`, with `{name}` placeholders filled in."""
        text = self._translations.gettext(key)
        return text.format(**values) if values else text

    def plural(self, key: str, count: int, **values: Any) -> str:
        """Return the plural form of `key` that fits `count` in this language."""
        text = self._translations.ngettext(key, key, count)
        return text.format(count=count, **values)


@cache
def available_languages() -> tuple[str, ...]:
    """Return the language codes that have a catalog, English first."""
    codes = sorted(path.stem for path in LOCALES_DIR.glob("*.po"))
    return tuple(sorted(codes, key=lambda code: code != DEFAULT_LANGUAGE))


def pick_language(*candidates: str | None) -> str:
    """Return the first candidate with a catalog (by its primary subtag)."""
    for candidate in candidates:
        if candidate:
            primary = candidate.replace("_", "-").split("-")[0].lower()
            if primary in available_languages():
                return primary
    return DEFAULT_LANGUAGE


@cache
def translator(language: str) -> Translator:
    """Return the Translator for `language` (English if it has no catalog)."""
    code = pick_language(language)
    translations = _load(code)
    if code != DEFAULT_LANGUAGE:
        translations.add_fallback(_load(DEFAULT_LANGUAGE))
    return Translator(code, translations)


def load_catalog(language: str) -> dict[str, Any]:
    """Return a catalog's messages by key (for checks that compare catalogs)."""
    with (LOCALES_DIR / f"{language}.po").open("rb") as handle:
        catalog = read_po(handle, locale=language)
    return {
        str(m.id if isinstance(m.id, str) else m.id[0]): m.string
        for m in catalog
        if m.id
    }


def _load(language: str) -> gettext.GNUTranslations:
    with (LOCALES_DIR / f"{language}.po").open("rb") as handle:
        catalog = read_po(handle, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)
