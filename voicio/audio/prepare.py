"""Get a note's audio from Telegram into a form the model accepts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from voicio.audio.errors import AudioTooBig, AudioUnreadable
from voicio.audio.ffmpeg import to_ogg_opus
from voicio.audio.segments import Segment, split_long_audio
from voicio.domain import AudioRef, MediaKind

Download = Callable[[str, int], Awaitable[bytes]]

# Containers Gemini takes inline, recognised by their first bytes.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"OggS", "audio/ogg"),
    (b"ID3", "audio/mp3"),
    (b"fLaC", "audio/flac"),
)


@dataclass(frozen=True)
class PreparedAudio:
    """Audio bytes and the MIME type to declare for them."""

    data: bytes
    mime_type: str


def inline_mime_type(data: bytes) -> str | None:
    """Return the MIME type if the model takes these bytes as they are."""
    for magic, mime in _SIGNATURES:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "audio/wav"
    if len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0:
        return "audio/mp3"  # an MPEG audio frame without an ID3 header
    return None


class AudioPreparer:
    """Download a note's file and convert it when the model needs that."""

    def __init__(self, download: Download, max_bytes: int) -> None:
        self._download = download
        self.max_bytes = max_bytes

    async def prepare(self, audio: AudioRef) -> PreparedAudio:
        """Return audio ready to send inline.

        Raises:
            AudioTooBig: the file is larger than a bot may download.
            AudioUnreadable: the bytes are empty or not decodable audio.
        """
        data = await self._fetch(audio)
        mime = inline_mime_type(data)
        if mime is not None and audio.kind is not MediaKind.VIDEO_NOTE:
            return PreparedAudio(data, mime)
        converted = await to_ogg_opus(data, _suffix(audio))
        return PreparedAudio(converted, "audio/ogg")

    async def split_to_parts(
        self, audio: AudioRef, folder: Path, target_seconds: float
    ) -> list[Segment]:
        """Download a long note to `folder` and cut it into parts at silences.

        The audio goes to disk, and ffmpeg streams it from there: memory holds
        at most the downloaded file (20 MB) and short analysis windows.
        """
        data = await self._fetch(audio)
        source = folder / f"note{_suffix(audio)}"
        await asyncio.to_thread(source.write_bytes, data)
        del data
        return await split_long_audio(source, folder / "parts", target=target_seconds)

    async def _fetch(self, audio: AudioRef) -> bytes:
        """Download a note's bytes, refusing what is too big or empty."""
        if audio.file_size is not None and audio.file_size > self.max_bytes:
            raise AudioTooBig(f"{audio.file_size} bytes")
        data = await self._download(audio.file_id, self.max_bytes)
        if not data:
            raise AudioUnreadable("the file is empty")
        return data


def _suffix(audio: AudioRef) -> str:
    if audio.kind is MediaKind.VIDEO_NOTE:
        return ".mp4"
    name = audio.file_name or ""
    return name[name.rfind(".") :] if "." in name else ".bin"
