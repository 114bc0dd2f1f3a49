"""Benchmark the whole pipeline: `voicio run` against the Telegram and Gemini fakes.

Three phases, each printed as it ends:

1. throughput: `--burst` chats send one note each at once; throughput is
   notes answered per second between the first model request and the last
   reply, as a fraction of the ideal GEMINI_CONCURRENCY / latency.
2. added latency: `--paced` notes arrive at `--load` times the ideal rate;
   for each, the time from the update being offered to Telegram's fake until
   the reply arrives, minus the time its model request took.
3. scale: `--chats` chats send one note each at once; the bot process's
   threads and RSS are sampled every 50 ms; peaks are printed.

Usage: python -m bench.pipeline [--latency 0.2] [--concurrency 32] ...
The database comes from VOICIO_TEST_DATABASE_URL, else the local server at
127.0.0.1:5432 if it answers, else an embedded PostgreSQL.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass

import psutil

from bench.common import admin_url, start_fakes
from tests.fakes.telegram_api import FakeChat, FakeUser
from tests.support.bot import BotProcess
from tests.support.database import DatabaseFactory
from tests.support.voices import english_notes


@dataclass
class Sample:
    """The bot process's peak resource use."""

    threads: int = 0
    rss: int = 0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class Rig:
    """Fakes, a fresh database and one bot process."""

    def __init__(
        self, stack: ExitStack, args: argparse.Namespace, databases: DatabaseFactory
    ):
        self.telegram, self.gemini, workdir = start_fakes(stack)
        self.gemini.set_latency(args.latency)
        self.bot = BotProcess(
            telegram=self.telegram,
            gemini=self.gemini,
            database_url=databases.fresh(),
            workdir=workdir,
            env={
                "GEMINI_CONCURRENCY": str(args.concurrency),
                "STATS_INTERVAL_SECONDS": str(args.stats_interval),
                "CHAT_IDLE_SECONDS": str(args.idle),
                "LOG_LEVEL": "INFO",
            },
        )
        # Registered first, so a failed start leaves no bot running behind.
        stack.callback(self._stop_bot)
        self.bot.start(ready_timeout=60)
        self.audio = english_notes()[0].data

        self.chat_of_audio: dict[str, int] = {}
        self._replies: dict[int, float] = {}
        self._scanned = 0

    def _stop_bot(self) -> None:
        if self.bot.running:
            self.bot.stop(120)

    def send_notes(self, first_chat: int, count: int) -> dict[int, float]:
        """Send one note from each of `count` new private chats; return send times.

        Each note's bytes differ (a trailing tag after the Ogg pages), so every
        model request can be traced back to its chat.
        """
        sent: dict[int, float] = {}
        for chat_id in range(first_chat, first_chat + count):
            user = FakeUser(chat_id, f"User {chat_id}")
            audio = self.audio + chat_id.to_bytes(8, "big")
            self.chat_of_audio[hashlib.sha256(audio).hexdigest()] = chat_id
            self.telegram.send_voice(
                FakeChat(chat_id, "private"), user, audio, duration=3
            )
            sent[chat_id] = time.monotonic()
        return sent

    def model_seconds(self) -> dict[int, float]:
        """How long each chat's model request took."""
        return {
            self.chat_of_audio[r.audio_sha256]: (r.finished or r.started) - r.started
            for r in self.gemini.requests
            if r.audio_sha256 in self.chat_of_audio and r.status == 200
        }

    def reply_times(self) -> dict[int, float]:
        """When the reply to each chat's note reached Telegram's fake."""
        requests = self.telegram.requests("sendMessage")
        # Scan only what arrived since the last call: the bench shares the
        # machine with the bot it measures.
        for request in requests[self._scanned :]:
            params = request.params
            if "reply_parameters" in params:
                self._replies.setdefault(int(params["chat_id"]), request.time)
        self._scanned = len(requests)
        return self._replies

    def wait_for_replies(self, chat_ids: set[int], timeout: float) -> None:
        # Polling, because re-checking thousands of replies on every request
        # the fake sees would cost more than the bot being measured.
        deadline = time.monotonic() + timeout
        while not chat_ids <= self.reply_times().keys():
            if time.monotonic() > deadline:
                raise TimeoutError(f"not all {len(chat_ids)} replies within {timeout}s")
            time.sleep(0.2)


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def throughput(rig: Rig, args: argparse.Namespace, first_chat: int) -> None:
    bot_cpu = cpu_seconds(rig.bot.pid)
    bench_cpu = cpu_seconds(os.getpid())
    sent = rig.send_notes(first_chat, args.burst)
    rig.wait_for_replies(set(sent), timeout=args.burst * args.latency + 120)
    replies = rig.reply_times()
    start = min(r.started for r in rig.gemini.requests)
    end = max(replies[c] for c in sent)
    rate = args.burst / (end - start)
    ideal = args.concurrency / args.latency
    bot_ms = (cpu_seconds(rig.bot.pid) - bot_cpu) / args.burst * 1000
    fakes_ms = (cpu_seconds(os.getpid()) - bench_cpu) / args.burst * 1000
    print(
        f"throughput: {args.burst} notes in {end - start:.2f}s = {rate:.1f} notes/s;"
        f" ideal {ideal:.1f}/s; fraction {rate / ideal:.3f}"
    )
    print(
        f"  CPU per note: bot {bot_ms:.1f} ms, fakes and bench {fakes_ms:.1f} ms"
        f" ({os.cpu_count()} CPUs for everything)"
    )


def added_latency(rig: Rig, args: argparse.Namespace, first_chat: int) -> None:
    ideal = args.concurrency / args.latency
    interval = 1.0 / (ideal * args.load)
    offered: dict[int, float] = {}
    next_at = time.monotonic()
    for chat_id in range(first_chat, first_chat + args.paced):
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # pacing the arrivals, not waiting for the bot
        offered.update(rig.send_notes(chat_id, 1))
        next_at += interval
    rig.wait_for_replies(set(offered), timeout=120)
    replies = rig.reply_times()
    model = rig.model_seconds()
    added = [(replies[c] - offered[c] - model[c]) * 1000 for c in offered if c in model]
    print(
        f"added latency: {len(added)} notes at {args.load:.0%} of ideal load;"
        f" p50 {percentile(added, 0.5):.1f} ms, p95 {percentile(added, 0.95):.1f} ms,"
        f" max {max(added):.1f} ms (mean {statistics.fmean(added):.1f} ms)"
    )


def scale(rig: Rig, args: argparse.Namespace, first_chat: int) -> None:
    process = psutil.Process(rig.bot.pid)
    peak = Sample()
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            try:
                peak.threads = max(peak.threads, process.num_threads())
                peak.rss = max(peak.rss, process.memory_info().rss)
            except psutil.Error:
                return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    sent = rig.send_notes(first_chat, args.chats)
    rig.wait_for_replies(set(sent), timeout=args.chats * args.latency + 300)
    elapsed = time.monotonic() - started
    stop.set()
    sampler.join()
    print(
        f"scale: {args.chats} chats answered in {elapsed:.1f}s;"
        f" peak threads {peak.threads}, peak RSS {peak.rss / 2**20:.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2, help="Gemini latency (s)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--burst", type=int, default=2000, help="notes for phase 1")
    parser.add_argument("--paced", type=int, default=1000, help="notes for phase 2")
    parser.add_argument("--load", type=float, default=0.5, help="phase 2 load")
    parser.add_argument("--chats", type=int, default=10_000, help="chats for phase 3")
    parser.add_argument("--idle", type=float, default=5.0, help="CHAT_IDLE_SECONDS")
    parser.add_argument("--phases", default="throughput,latency,scale")
    parser.add_argument("--stats-interval", type=float, default=10.0)
    parser.add_argument(
        "--show-stats", action="store_true", help="print the bot's stats lines"
    )
    args = parser.parse_args()
    phases = args.phases.split(",")

    print(
        f"bench: latency {args.latency * 1000:.0f} ms, concurrency {args.concurrency},"
        f" {os.cpu_count()} CPUs"
    )
    with admin_url() as url, ExitStack() as stack:
        databases = DatabaseFactory(url)
        databases.create_template()
        stack.callback(databases.drop_all)
        first = 1_000_000
        for name, phase in (
            ("throughput", throughput),
            ("latency", added_latency),
            ("scale", scale),
        ):
            if name in phases:
                with ExitStack() as rig_stack:
                    rig = Rig(rig_stack, args, databases)
                    phase(rig, args, first)
                    if args.show_stats:
                        for line in rig.bot.log.splitlines():
                            if "actor stats" in line:
                                print("  ", line.split("actor stats: ")[1])
                first += 1_000_000


if __name__ == "__main__":
    main()
