"""Long notes: probing, cutting at pauses, splitting on disk, merging the text."""

from __future__ import annotations

import array
import asyncio
import itertools
import logging
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from voicio.audio.errors import AudioUnreadable
from voicio.audio.ffmpeg import ffmpeg_executable
from voicio.audio.segments import (
    Segment,
    find_cut_points,
    merge_transcripts,
    probe_duration,
    split,
    split_long_audio,
)

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
RATE = 48_000
BYTES_PER_SECOND = RATE * 2  # mono, 16-bit
GAP = 1.0
TITLE = "Long note"
CLEAR_REFS = Path("/proc/self/clear_refs")


@dataclass(frozen=True)
class LongNote:
    """Thirty spoken notes with a second of digital silence after each."""

    path: Path
    duration: float
    gaps: list[tuple[float, float]]


def ffmpeg(*args: str) -> bytes:
    """Run ffmpeg quietly, overwriting outputs; return what it writes to stdout."""
    quiet = ("-hide_banner", "-nostdin", "-loglevel", "error", "-y")
    command = [ffmpeg_executable(), *quiet, *args]
    return subprocess.run(command, capture_output=True, check=True).stdout


@pytest.fixture(scope="module")
def long_note(tmp_path_factory: pytest.TempPathFactory) -> LongNote:
    folder = tmp_path_factory.mktemp("long")
    notes = sorted((FIXTURES / "voice").glob("??_*.ogg"))
    assert len(notes) == 30
    # One ffmpeg run decodes every note, so their exact lengths are known.
    inputs = [arg for note in notes for arg in ("-i", str(note))]
    pcm_format = ("-f", "s16le", "-ac", "1", "-ar", str(RATE))
    outputs = [
        arg
        for i in range(len(notes))
        for arg in ("-map", f"{i}:a", *pcm_format, str(folder / f"{i}.raw"))
    ]
    ffmpeg(*inputs, *outputs)
    pcm = bytearray()
    gaps = []
    for i in range(len(notes)):
        pcm += (folder / f"{i}.raw").read_bytes()
        gap_start = len(pcm) / BYTES_PER_SECOND
        pcm += bytes(int(BYTES_PER_SECOND * GAP))
        gaps.append((gap_start, gap_start + GAP))
    raw = folder / "long.raw"
    raw.write_bytes(pcm)
    path = folder / "long.ogg"
    # Encoder complexity 0 keeps the fixture quick; the splitter does not care.
    ffmpeg(
        *("-f", "s16le", "-ar", str(RATE), "-ac", "1", "-i", str(raw)),
        *("-metadata", f"TITLE={TITLE}", "-c:a", "libopus", "-b:a", "24k"),
        *("-application", "voip", "-compression_level", "0", str(path)),
    )
    return LongNote(path, len(pcm) / BYTES_PER_SECOND, gaps)


def tone(
    path: Path,
    seconds: float,
    pauses: list[tuple[float, float]],
    *,
    gain_db: float = 0.0,
    noise: float = 0.0,
) -> Path:
    """Write a 16 kHz WAV of a steady tone, muted during `pauses`, over `noise`."""
    muted = "+".join(f"between(t,{begin},{end})" for begin, end in pauses)
    shape = f"volume={gain_db}dB,volume=0:enable='{muted}'"
    # 10 ms frames, because `enable` switches the volume a whole frame at a time.
    sine = f"sine=440:sample_rate=16000:samples_per_frame=160:duration={seconds}"
    hiss = f"anoisesrc=sample_rate=16000:amplitude={noise}:duration={seconds}:seed=7"
    ffmpeg(
        *("-f", "lavfi", "-i", sine, "-f", "lavfi", "-i", hiss),
        *("-filter_complex", f"[0:a]{shape}[t];[t][1:a]amix=inputs=2:normalize=0"),
        *("-c:a", "pcm_s16le", str(path)),
    )
    return path


def peak(path: Path, start: float, seconds: float) -> int:
    """Return the loudest sample (of 32767) in a span of the file."""
    raw = ffmpeg(
        *("-ss", f"{start:.3f}", "-t", f"{seconds:.3f}", "-i", str(path)),
        *("-f", "s16le", "-ac", "1", "-"),
    )
    return max((abs(sample) for sample in array.array("h", raw)), default=0)


def tags(path: Path) -> bytes:
    """Return the OpusTags page of an Ogg/Opus file, the second in the file."""
    head = path.read_bytes()[:8192]
    start = head.index(b"OpusTags")
    return head[start : head.index(b"OggS", start)]


def test_probe_duration_matches_the_notes_and_gaps(long_note: LongNote) -> None:
    duration = asyncio.run(probe_duration(long_note.path))

    assert duration == pytest.approx(long_note.duration, abs=0.2)


def test_probe_duration_decodes_when_the_container_states_none(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # WebM written to a pipe cannot go back to fill in its duration.
    webm = tmp_path / "piped.webm"
    note = FIXTURES / "voice" / "en_01.ogg"
    webm.write_bytes(ffmpeg("-i", str(note), "-c", "copy", "-f", "webm", "pipe:1"))
    decoded = len(ffmpeg("-i", str(note), "-f", "s16le", "-")) / BYTES_PER_SECOND

    with caplog.at_level(logging.DEBUG, logger="voicio.audio.segments"):
        duration = asyncio.run(probe_duration(webm))

    assert duration == pytest.approx(decoded, abs=0.02)
    assert "decoding" in caplog.text


@pytest.mark.parametrize(
    "name", ["bad/garbage.bin", "bad/empty.ogg", "bad/not_audio.ogg", "missing.ogg"]
)
def test_probe_duration_rejects_what_is_not_audio(name: str) -> None:
    with pytest.raises(AudioUnreadable):
        asyncio.run(probe_duration(FIXTURES / name))


def test_png_named_ogg_is_reported_as_having_no_audio() -> None:
    with pytest.raises(AudioUnreadable, match="no audio stream"):
        asyncio.run(probe_duration(FIXTURES / "bad" / "not_audio.ogg"))


def test_cuts_fall_in_silences_and_bound_the_segments(long_note: LongNote) -> None:
    cuts = asyncio.run(
        find_cut_points(long_note.path, long_note.duration, target=30, window=5)
    )

    assert len(cuts) == 4
    assert cuts == sorted(cuts)
    bounds = [0.0, *cuts, long_note.duration]
    assert all(0 < b - a <= 35 for a, b in itertools.pairwise(bounds))
    for cut in cuts:
        assert peak(long_note.path, cut - 0.1, 0.2) < 328, cut  # under -40 dBFS
        assert any(a <= cut <= b for a, b in long_note.gaps), cut


def test_cut_moves_to_the_nearest_long_enough_pause(tmp_path: Path) -> None:
    # Planned cuts at 25, 50 and 75 s; each searches 5 s either side.
    audio = tone(
        tmp_path / "tone.wav",
        100,
        # nearer to 25 than the first; too short; just outside the window
        [(21.0, 22.0), (27.2, 28.0), (49.0, 49.3), (80.5, 81.5)],
    )

    cuts = asyncio.run(find_cut_points(audio, 100, target=30, window=5))

    assert cuts == pytest.approx([27.6, 50.0, 75.0], abs=0.02)


def test_a_pause_that_would_make_a_segment_too_long_is_passed_over(
    tmp_path: Path,
) -> None:
    # Planned cuts at 29.67 and 59.33 s. After a cut at 25.3 s, the pause at 61 s
    # would leave a 36 s segment, over target + window.
    audio = tone(tmp_path / "tone.wav", 89, [(25.0, 25.6), (61.0, 62.0)])

    cuts = asyncio.run(find_cut_points(audio, 89, target=30, window=5))

    assert cuts == pytest.approx([25.3, 59.333], abs=0.02)


@pytest.mark.parametrize(
    ("gain_db", "noise"),
    [
        pytest.param(0.0, 0.03, id="noise at -35 dBFS, never quiet enough for -40"),
        pytest.param(-30.0, 0.0, id="speech at -51 dBFS, quieter than -40"),
    ],
)
def test_pauses_are_found_beyond_the_fixed_threshold(
    tmp_path: Path, gain_db: float, noise: float
) -> None:
    audio = tone(
        tmp_path / "tone.wav", 100, [(21.0, 23.0)], gain_db=gain_db, noise=noise
    )

    cuts = asyncio.run(find_cut_points(audio, 100, target=30, window=5))

    assert cuts == pytest.approx([22.0, 50.0, 75.0], abs=0.02)


def test_audio_barely_over_target_is_not_cut() -> None:
    # Nothing is decoded, so the file need not even exist.
    cuts = asyncio.run(find_cut_points(Path("absent.ogg"), 32.9, target=30, window=5))

    assert cuts == []


def test_window_must_be_small_against_target() -> None:
    with pytest.raises(ValueError, match="window"):
        asyncio.run(find_cut_points(Path("absent.ogg"), 100, target=30, window=8))


def test_split_writes_contiguous_tagged_segments(
    long_note: LongNote, tmp_path: Path
) -> None:
    cuts = [24.4, 48.9, 73.9, 100.1]

    segments = asyncio.run(split(long_note.path, cuts, tmp_path / "out"))

    assert [s.index for s in segments] == [0, 1, 2, 3, 4]
    assert [s.start for s in segments] == [0.0, *cuts]
    assert [s.end for s in segments][:-1] == cuts
    assert segments[-1].end == pytest.approx(long_note.duration, abs=0.2)
    lengths = [asyncio.run(probe_duration(s.path)) for s in segments]
    assert sum(lengths) == pytest.approx(long_note.duration, abs=0.5)
    for segment, length in zip(segments, lengths, strict=True):
        assert segment.path.parent == tmp_path / "out"
        assert length == pytest.approx(segment.end - segment.start, abs=0.05)
        assert f"TITLE={TITLE}".encode() in tags(segment.path)


def test_short_audio_comes_back_as_one_converted_segment(tmp_path: Path) -> None:
    note = FIXTURES / "voice" / "en_01.ogg"

    segments = asyncio.run(split_long_audio(note, tmp_path, target=30))

    assert segments == [Segment(0, 0.0, segments[0].end, tmp_path / "segment_000.ogg")]
    assert segments[0].end == pytest.approx(3.17, abs=0.02)
    assert b"TITLE=Note one. Remind me" in tags(segments[0].path)


def memory_kb(field: str) -> int:
    """Return a size from /proc/self/status: VmRSS now, or VmHWM, its peak."""
    status = Path("/proc/self/status").read_text(encoding="utf-8")
    found = re.search(rf"^{field}:\s+(\d+) kB$", status, re.MULTILINE)
    assert found is not None
    return int(found[1])


# ru_maxrss only ever grows (and a child even inherits its parent's at exec), so an
# earlier test's peak would hide any growth here. Linux lets a process reset its
# own high-water mark to its current size instead.
@pytest.mark.skipif(not CLEAR_REFS.exists(), reason="needs Linux /proc")
def test_twenty_minutes_split_in_bounded_memory(
    long_note: LongNote, tmp_path: Path
) -> None:
    # Stream-copying the long note round and round makes 20 minutes at once.
    big = tmp_path / "big.ogg"
    ffmpeg(
        *("-stream_loop", "-1", "-i", str(long_note.path)),
        *("-t", "1190", "-c", "copy", str(big)),
    )
    CLEAR_REFS.write_text("5", encoding="ascii")
    resting = memory_kb("VmRSS")

    segments = asyncio.run(split_long_audio(big, tmp_path / "out"))

    assert memory_kb("VmHWM") - resting < 50 * 1024
    assert len(segments) == 2
    assert segments[-1].end == pytest.approx(1190, abs=0.5)


@pytest.mark.parametrize(
    ("parts", "merged"),
    [
        ([], ""),
        (["  ", ""], ""),
        ([" One. ", "", "Two."], "One.\n\nTwo."),
        (["We went to the", "market today."], "We went to the market today."),
        (
            ["He said: \u00abstop.\u00bb", "Then left."],
            "He said: \u00abstop.\u00bb\n\nThen left.",
        ),
        (["It costs 5 p.", "m. sharp"], "It costs 5 p. m. sharp"),
        (["And then...", "Nothing."], "And then... Nothing."),
        (["Где ты?", "Я тут."], "Где ты?\n\nЯ тут."),
        (["Мы пошли", "домой."], "Мы пошли домой."),
        (["a", "b", "c."], "a b c."),
    ],
)
def test_merge_transcripts(parts: list[str], merged: str) -> None:
    assert merge_transcripts(parts) == merged
