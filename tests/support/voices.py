"""The recorded voice fixtures and what is said in them."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from voicio.audio.ffmpeg import ffmpeg_executable

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


def looped_recording(folder: Path, seconds: float, title: str) -> bytes:
    """Build a long Ogg/Opus voice note: one fixture and a second of silence,
    repeated to about `seconds`, tagged with `title` (the Gemini fake's
    transcript of every part cut from it)."""
    quiet = (
        ffmpeg_executable(),
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-y",
    )
    source = str(FIXTURES / "voice" / "en_01.ogg")
    retag = ("-map_metadata", "-1", "-map_metadata:s:a", "-1")
    opus = ("-ac", "1", "-c:a", "libopus", "-b:a", "16k", "-application", "voip")
    unit = folder / "unit.ogg"
    subprocess.run(
        [
            *quiet,
            "-i",
            source,
            *retag,
            "-metadata:s:a",
            f"TITLE={title}",
            "-af",
            "apad=pad_dur=1",
            *opus,
            str(unit),
        ],
        check=True,
    )
    out = folder / "long.ogg"
    loops = str(max(1, round(seconds / 4.5)) - 1)
    subprocess.run(
        [*quiet, "-stream_loop", loops, "-i", str(unit), "-c", "copy", str(out)],
        check=True,
    )
    return out.read_bytes()
