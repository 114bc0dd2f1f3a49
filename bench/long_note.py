"""Benchmark a long voice note: wall time and peak memory of `voicio run`.

Builds a voice note of `--minutes` (default 120) from a fixture and silence,
sends it through the Telegram fake, and measures until the reply arrives:

- split: the default path (cut at silences into ~10-minute parts, heard in
  parallel through the pool, merged, summarized from the text);
- single: the same note as one request (LONG_AUDIO_SECONDS above its length),
  the baseline.

The bot's RSS (and that of any ffmpeg it runs) is sampled every 50 ms. The
Gemini fake answers every request after `--latency` seconds whatever its
length, so the comparison shows what splitting costs and saves in Voicio
itself; with the real model a single two-hour request also takes far longer
and risks a truncated transcript, which is why Voicio splits.

Usage: python -m bench.long_note [--minutes 120] [--latency 3]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import psutil

from bench.common import admin_url, start_fakes
from tests.fakes.telegram_api import FakeChat, FakeUser
from tests.support.bot import BotProcess
from tests.support.database import DatabaseFactory
from tests.support.voices import looped_recording

TITLE = "A long walk along the river."


class Peak:
    """Sample a process tree's memory until stopped."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self.bot_rss = 0
        self.child_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.bot_rss = max(self.bot_rss, self._process.memory_info().rss)
                for child in self._process.children(recursive=True):
                    self.child_rss = max(self.child_rss, child.memory_info().rss)
            except psutil.Error:
                continue

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run_once(
    audio: bytes, seconds: int, env: dict[str, str], latency: float, url: str
) -> tuple[float, Peak, int]:
    with ExitStack() as stack:
        telegram, gemini, workdir = start_fakes(stack)
        gemini.set_latency(latency)
        bot = BotProcess(
            telegram=telegram, gemini=gemini, database_url=url, workdir=workdir, env=env
        )
        stack.callback(bot.stop)
        bot.start(ready_timeout=60)
        peak = Peak(bot.pid)
        user = FakeUser(900, "Bench")
        started = time.monotonic()
        telegram.send_voice(FakeChat(900, "private"), user, audio, duration=seconds)
        telegram.wait_for_messages(900, 1, timeout=1800)
        elapsed = time.monotonic() - started
        peak.stop()
        reply = telegram.bot_messages(900)[0]
        assert TITLE in reply.text or reply.document is not None, reply.text[:200]
        return elapsed, peak, len(gemini.requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=120.0)
    parser.add_argument("--latency", type=float, default=3.0)
    args = parser.parse_args()
    seconds = int(args.minutes * 60)

    with tempfile.TemporaryDirectory() as folder, admin_url() as url:
        started = time.monotonic()
        audio = looped_recording(Path(folder), seconds, TITLE)
        print(
            f"long note: {args.minutes:.0f} min, {len(audio) / 2**20:.1f} MiB of Opus,"
            f" built in {time.monotonic() - started:.1f}s; fake latency {args.latency}s"
        )
        databases = DatabaseFactory(url)
        databases.create_template()
        try:
            for name, env in (
                ("split", {}),
                ("single", {"LONG_AUDIO_SECONDS": str(seconds + 60)}),
            ):
                elapsed, peak, requests = run_once(
                    audio, seconds, env, args.latency, databases.fresh()
                )
                print(
                    f"{name}: answered in {elapsed:.1f}s with {requests} requests;"
                    f" peak RSS bot {peak.bot_rss / 2**20:.0f} MiB,"
                    f" ffmpeg {peak.child_rss / 2**20:.0f} MiB"
                )
        finally:
            databases.drop_all()


if __name__ == "__main__":
    main()
