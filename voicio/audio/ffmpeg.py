"""Find ffmpeg and use it to turn any audio or video into Ogg/Opus."""

from __future__ import annotations

import asyncio
import functools
import logging
import shutil
import tempfile
from pathlib import Path

from voicio.audio.errors import AudioUnreadable

logger = logging.getLogger(__name__)

# Speech needs little: mono, 24 kbit/s Opus tuned for voice, like Telegram's own.
_OPUS_ARGS = ("-ac", "1", "-c:a", "libopus", "-b:a", "24k", "-application", "voip")


@functools.cache
def ffmpeg_executable() -> str:
    """Return the system ffmpeg, else the one bundled with imageio-ffmpeg."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


async def run_ffmpeg(*args: str, limit_seconds: float = 120.0) -> bytes:
    """Run ffmpeg with `args`, return its stdout; raise AudioUnreadable on failure."""
    process = await asyncio.create_subprocess_exec(
        ffmpeg_executable(),
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), limit_seconds)
    except TimeoutError:
        raise AudioUnreadable(f"ffmpeg took longer than {limit_seconds:.0f}s") from None
    finally:
        # Timed out or cancelled (a shutdown): never leave ffmpeg running.
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0:
        detail = stderr.decode(errors="replace").strip().splitlines()[-1:] or ["?"]
        raise AudioUnreadable(f"ffmpeg failed ({process.returncode}): {detail[0]}")
    return stdout


async def to_ogg_opus(data: bytes, suffix: str = ".bin") -> bytes:
    """Convert audio (or a video's audio track) to Ogg/Opus in memory.

    The input goes through a temporary file because MP4 keeps its index at the
    end, which ffmpeg cannot seek to in a pipe. Metadata is kept.
    """
    with tempfile.TemporaryDirectory(prefix="voicio-") as folder:
        source = Path(folder) / f"in{suffix}"
        await asyncio.to_thread(source.write_bytes, data)
        output = await run_ffmpeg(
            "-i",
            str(source),
            "-vn",
            "-map_metadata",
            "0",
            *_OPUS_ARGS,
            "-f",
            "ogg",
            "pipe:1",
        )
    if not output:
        raise AudioUnreadable("ffmpeg produced no audio")
    return output
