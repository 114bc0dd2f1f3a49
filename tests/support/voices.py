"""The recorded voice fixtures and what is said in them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@dataclass(frozen=True)
class Recording:
    """A fixture file, its bytes and its known content."""

    name: str
    data: bytes
    text: str
    language: str | None
    duration: float
    kind: str


@cache
def recordings() -> dict[str, Recording]:
    manifest = json.loads((FIXTURES / "manifest.json").read_text(encoding="utf-8"))
    return {
        name: Recording(
            name=name,
            data=(FIXTURES / name).read_bytes(),
            text=entry["text"],
            language=entry["language"],
            duration=float(entry["duration"] or 0),
            kind=entry["kind"],
        )
        for name, entry in manifest.items()
    }


def recording(name: str) -> Recording:
    return recordings()[name]


def english_notes() -> list[Recording]:
    return [r for n, r in sorted(recordings().items()) if n.startswith("voice/en_")]
