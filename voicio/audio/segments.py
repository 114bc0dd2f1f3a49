"""Split long audio into segments at pauses, and join their transcripts back up.

The model's output-token limit truncates a long transcript well before its audio
limit, so a long note is transcribed in segments. Everything here works on files
on disk and streams through ffmpeg: only a short window around each planned cut
is ever decoded into memory, so even a two-hour note needs a few megabytes.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
import math
import re
import warnings
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

from voicio.audio.errors import AudioUnreadable
from voicio.audio.ffmpeg import ffmpeg_executable, run_ffmpeg

with warnings.catch_warnings():
    # pydub warns at import when ffmpeg is not on PATH (the bundled one is not);
    # it never needs ffmpeg here, because it is only ever handed WAV bytes.
    warnings.simplefilter("ignore", RuntimeWarning)
    from pydub import AudioSegment
    from pydub.silence import detect_silence
    from pydub.utils import make_chunks

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

# Segments are encoded like the rest of Voicio's audio (see ffmpeg.py). Complexity
# 5 encodes about twice as fast as libopus' default 10, which matters for two
# hours of audio, and costs nothing audible to a transcriber at 24 kbit/s.
_OPUS_ARGS = (
    *("-ac", "1", "-c:a", "libopus", "-b:a", "24k", "-application", "voip"),
    *("-compression_level", "5"),
)

# Windows are decoded at a rate that keeps speech's energy but little memory:
# 40 s of 16 kHz mono 16-bit PCM is 1.3 MB.
_WINDOW_ARGS = ("-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le", "-f", "wav")

# How many ffmpeg processes one call runs at once: a long note should not take
# every core from the other chats.
_WORKERS = 2

# Safety nets against a hung ffmpeg, not performance targets: decoding or
# encoding two hours of audio on a slow core takes a few minutes at worst.
_PROBE_LIMIT = 60.0
_LONG_JOB_LIMIT = 1800.0

# Silence detection (see _silence_threshold): 50 ms frames to measure the noise
# floor, 10 ms steps to locate silences, -96 dBFS as the quietest 16-bit level.
_FRAME_MS = 50
_SEEK_STEP_MS = 10
_QUIETEST_DB = -96.0
_ABOVE_NOISE_DB = 6.0
_BELOW_SPEECH_DB = 10.0

_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_AUDIO_STREAM = re.compile(r"Stream #\d+:\d+\S*: Audio:")
_OUT_TIME_US = re.compile(rb"^out_time_us=(\d+)\s*$", re.MULTILINE)

# What ends a sentence in the languages Voicio hears, and what may trail it.
_SENTENCE_ENDS = (".", "!", "?", "\u3002", "\uff01", "\uff1f", "\u061f")
_CLOSERS = "\"')]}\u00bb\u201d\u2019"


@dataclass(frozen=True)
class Segment:
    """One piece of a long recording, written to its own Ogg/Opus file."""

    index: int
    start: float
    end: float
    path: Path


async def probe_duration(path: Path) -> float:
    """Return the duration of the audio in `path`, in seconds.

    The duration comes from ffmpeg's report on the file (there is no ffprobe).
    When the container states none, or ffmpeg only estimates it from the bit rate,
    the audio is decoded to nowhere, streaming, and the decoder's final position
    is the answer.

    Raises:
        AudioUnreadable: ffmpeg cannot read the file, or it holds no audio.
    """
    returncode, report = await _ffmpeg_report(
        # Decoding one frame proves there is an audio stream ffmpeg can decode.
        *("-i", _arg(path), "-map", "0:a:0", "-frames:a", "1", "-f", "null", "-")
    )
    if returncode != 0:
        raise AudioUnreadable(_failure(report))
    duration = _stated_duration(report)
    if duration is None:
        logger.debug("No reliable duration in %s; decoding it", path.name)
        duration = await _decoded_duration(path)
    if duration <= 0:
        raise AudioUnreadable("the audio is empty")
    return duration


async def find_cut_points(
    path: Path,
    duration: float,
    *,
    target: float = 600.0,
    window: float = 20.0,
    min_silence_ms: int = 400,
    silence_thresh_db: float = -40.0,
) -> list[float]:
    """Return where to cut the audio: ascending seconds, excluding 0 and the end.

    The audio is split into the fewest segments of at most `target` seconds, of
    equal planned length, so no short tail is left over. Each cut moves from its
    planned place to the middle of the nearest silence within `window` seconds,
    found by decoding only that window; without one, it stays put. No segment
    exceeds `target + window` seconds. `silence_thresh_db` is the loudest level
    that counts as silence in a clean recording; see `_silence_threshold`.

    Raises:
        ValueError: `target` is not positive or `window` not under a quarter of it.
        AudioUnreadable: ffmpeg fails to decode a window.
    """
    if target <= 0 or not 0 <= window < target / 4:
        raise ValueError("need target > 0 and 0 <= window < target / 4")
    # A note barely over target still fits the model's output with room to spare,
    # and cutting it would add a seam in the text and a request for a small tail.
    if duration <= target * 1.1:
        return []
    count = math.ceil(duration / target)
    planned = [k * duration / count for k in range(1, count)]
    silences = await _bounded(
        partial(_silences_near, path, at, window, min_silence_ms, silence_thresh_db)
        for at in planned
    )
    cuts: list[float] = []
    previous = 0.0
    for at, found in zip(planned, silences, strict=True):
        # Planned segments are at most `target` long, so the search range always
        # holds `at` itself, and a cut past `previous + target + window` never wins.
        latest = min(at + window, previous + target + window)
        previous = round(_cut_near(at, found, at - window, latest), 3)
        cuts.append(previous)
    return cuts


async def split(path: Path, cuts: list[float], out_dir: Path) -> list[Segment]:
    """Write each span between cuts to its own Ogg/Opus file in `out_dir`.

    Files are named `segment_000.ogg` and up, in order, each holding exactly its
    span of the source (mono, 24 kbit/s Opus) and the source's metadata. ffmpeg
    streams from file to file; no audio passes through Python.

    Raises:
        AudioUnreadable: ffmpeg fails on any segment.
    """
    await asyncio.to_thread(out_dir.mkdir, parents=True, exist_ok=True)
    starts = [0.0, *cuts]
    ends: list[float | None] = [*cuts, None]
    return await _bounded(
        partial(_write_segment, path, index, start, end, out_dir)
        for index, (start, end) in enumerate(zip(starts, ends, strict=True))
    )


async def split_long_audio(
    path: Path, out_dir: Path, *, target: float = 600.0
) -> list[Segment]:
    """Split the audio at `path` into segments of about `target` seconds.

    A file not longer than `target * 1.1` comes back as one segment: a converted
    copy in `out_dir`, so callers always get Ogg/Opus files.

    Raises:
        AudioUnreadable: the file is not audio ffmpeg can read.
    """
    duration = await probe_duration(path)
    # The default 20 s window suits 10-minute segments; short targets need less.
    window = min(20.0, target / 5)
    cuts = await find_cut_points(path, duration, target=target, window=window)
    logger.info(
        "Splitting %s (%.0f s) into %d segments", path.name, duration, len(cuts) + 1
    )
    return await split(path, cuts, out_dir)


def merge_transcripts(parts: list[str]) -> str:
    """Join segment transcripts, in order, into one text.

    Each part is stripped and empty ones are dropped. A part continues the one
    before it after a single space when that one stops mid-sentence (it does not
    end in sentence-ending punctuation, closing quotes and brackets aside, or it
    trails off with "...") or when the part starts in lower case, which means the
    cut fell inside a sentence. Otherwise it starts a new paragraph, after a
    blank line.
    """
    texts = [text for text in (part.strip() for part in parts) if text]
    if not texts:
        return ""
    pieces = [texts[0]]
    for previous, text in itertools.pairwise(texts):
        pieces.extend((" " if _continues(previous, text) else "\n\n", text))
    return "".join(pieces)


def _continues(previous: str, text: str) -> bool:
    tail = previous.rstrip(_CLOSERS)
    finished = tail.endswith(_SENTENCE_ENDS) and not tail.endswith("...")
    return not finished or text[0].islower()


def _arg(path: Path) -> str:
    # Absolute, so a file named "-x" or "http:x" is never read as an option or URL.
    return str(path.absolute())


async def _bounded(jobs: Iterable[Callable[[], Awaitable[_T]]]) -> list[_T]:
    """Run the jobs, at most _WORKERS at a time, and return results in order."""
    gate = asyncio.Semaphore(_WORKERS)

    async def run(job: Callable[[], Awaitable[_T]]) -> _T:
        # Start the job only once through the gate, so a cancelled one never starts.
        async with gate:
            return await job()

    tasks = [asyncio.ensure_future(run(job)) for job in jobs]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        # After a failure, the jobs still queued behind the gate need not start.
        for task in tasks:
            task.cancel()


async def _ffmpeg_report(*args: str) -> tuple[int, str]:
    """Run ffmpeg at the info log level; return its exit code and its stderr."""
    process = await asyncio.create_subprocess_exec(
        *(ffmpeg_executable(), "-hide_banner", "-nostdin", "-nostats"),
        *("-loglevel", "info", *args),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), _PROBE_LIMIT)
    except TimeoutError:
        raise AudioUnreadable("ffmpeg took too long to read the file") from None
    finally:
        if process.returncode is None:  # timed out or cancelled: stop it
            process.kill()
            await process.wait()
    return process.returncode or 0, stderr.decode(errors="replace")


def _failure(report: str) -> str:
    if "Input #0" in report and not _AUDIO_STREAM.search(report):
        return "the file has no audio stream"
    lines = report.strip().splitlines()
    return f"ffmpeg cannot read the file: {lines[-1] if lines else '?'}"


def _stated_duration(report: str) -> float | None:
    # Raw MP3 or AAC without a header only gets a guess from the bit rate.
    if "Estimating duration from bitrate" in report:
        return None
    found = _DURATION.search(report)
    if found is None:  # "Duration: N/A"
        return None
    hours, minutes, seconds = found.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


async def _decoded_duration(path: Path) -> float:
    progress = await run_ffmpeg(
        *("-i", _arg(path), "-map", "0:a:0", "-f", "null"),
        # -progress prints machine-readable positions, unlike the stats line.
        *("-progress", "pipe:1", "-nostats", "-"),
        limit_seconds=_LONG_JOB_LIMIT,
    )
    positions = _OUT_TIME_US.findall(progress)
    if not positions:
        raise AudioUnreadable("ffmpeg decoded no audio")
    return int(positions[-1]) / 1_000_000


async def _silences_near(
    path: Path, at: float, window: float, min_silence_ms: int, quiet_db: float
) -> list[tuple[float, float]]:
    """Return the silences within `window` seconds of `at`, in source seconds."""
    start = max(0.0, at - window)
    wav = await run_ffmpeg(
        *("-ss", f"{start:.3f}", "-t", f"{at + window - start:.3f}"),
        *("-i", _arg(path), "-map", "0:a:0", *_WINDOW_ARGS, "pipe:1"),
    )
    # Silence detection is pure-Python CPU work; keep it off the event loop.
    spans = await asyncio.to_thread(_find_silences, wav, min_silence_ms, quiet_db)
    return [(start + begin / 1000, start + end / 1000) for begin, end in spans]


def _find_silences(wav: bytes, min_silence_ms: int, quiet_db: float) -> list[list[int]]:
    audio = AudioSegment.from_file(io.BytesIO(wav), format="wav")
    if len(audio) < min_silence_ms:
        return []
    spans: list[list[int]] = detect_silence(
        audio,
        min_silence_len=min_silence_ms,
        silence_thresh=_silence_threshold(audio, quiet_db),
        seek_step=_SEEK_STEP_MS,
    )
    return spans


def _silence_threshold(audio: AudioSegment, quiet_db: float) -> float:
    """Return the level (dBFS) below which this window counts as silent.

    `quiet_db` works for clean recordings, but a note made in a street or a car
    never drops that low, and a very quiet one whispers below it. So the noise
    floor (the 10th percentile of 50 ms frame levels: pauses fill more than a
    tenth of speech) may raise the threshold to just above itself, and the
    window's overall level, which speech dominates, caps it 10 dB under speech.
    """
    frames = sorted(max(f.dBFS, _QUIETEST_DB) for f in make_chunks(audio, _FRAME_MS))
    noise = frames[len(frames) // 10]
    speech = max(audio.dBFS, _QUIETEST_DB)
    threshold = max(quiet_db, noise + _ABOVE_NOISE_DB)
    return float(min(threshold, speech - _BELOW_SPEECH_DB))


def _cut_near(
    at: float, silences: list[tuple[float, float]], earliest: float, latest: float
) -> float:
    """Return the middle of the silence nearest `at` within the range, else `at`."""
    best: tuple[float, float] | None = None
    for begin, end in silences:
        begin, end = max(begin, earliest), min(end, latest)
        if begin < end and (best is None or _gap(at, begin, end) < _gap(at, *best)):
            best = (begin, end)
    return at if best is None else (best[0] + best[1]) / 2


def _gap(at: float, begin: float, end: float) -> float:
    return max(begin - at, at - end, 0.0)


async def _write_segment(
    path: Path, index: int, start: float, end: float | None, out_dir: Path
) -> Segment:
    target = out_dir / f"segment_{index:03d}.ogg"
    length = ("-t", f"{end - start:.3f}") if end is not None else ()
    await run_ffmpeg(
        *("-y", "-ss", f"{start:.3f}", *length, "-i", _arg(path), "-map", "0:a:0"),
        *("-map_metadata", "0", *_OPUS_ARGS, "-f", "ogg", _arg(target)),
        limit_seconds=_LONG_JOB_LIMIT,
    )
    if end is None:
        # The last segment runs to the end of the source, wherever that proves to be.
        end = start + await probe_duration(target)
    return Segment(index, start, end, target)
