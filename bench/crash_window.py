"""How often a crash makes Voicio answer a note twice.

Voicio records the replies it sent for a note, so a replayed note is not
answered again. One window remains: Telegram has accepted a reply, but the
record of it is not yet committed when the process dies. The restarted bot
then sends the reply again. This script measures how often that happens:
each trial sends notes, kills the bot with SIGKILL at a random moment while
replies are going out, restarts it, and counts replies per note.

Usage: python -m bench.crash_window [--trials 20] [--notes 12]
"""

from __future__ import annotations

import argparse
import collections
import random
import time
from contextlib import ExitStack

from bench.common import admin_url, start_fakes
from tests.fakes.telegram_api import FakeChat, FakeUser
from tests.support.bot import BotProcess
from tests.support.database import DatabaseFactory
from tests.support.voices import english_notes


def trial(url: str, notes: int, rng: random.Random) -> tuple[int, int, int]:
    """Run one crash; return (notes sent, notes answered, extra replies)."""
    with ExitStack() as stack:
        telegram, gemini, workdir = start_fakes(stack)

        def bot() -> BotProcess:
            process = BotProcess(
                telegram=telegram, gemini=gemini, database_url=url, workdir=workdir
            )
            stack.callback(lambda: process.running and process.kill())
            return process.start(ready_timeout=60)

        gemini.set_latency(lambda: rng.uniform(0.05, 0.6))
        first = bot()
        voices: list[tuple[int, int]] = []
        audio = english_notes()
        for index in range(notes):
            user = FakeUser(800 + index % 4, f"U{index % 4}")
            data = audio[index % 24].data + rng.randbytes(4)
            chat = FakeChat(user.id, "private")
            voices.append((user.id, telegram.send_voice(chat, user, data, duration=3)))
        # Kill while replies are going out: after the first, before the last.
        telegram.wait_until(lambda: telegram.requests("sendMessage"), 30, "a reply")
        time.sleep(rng.uniform(0.0, 0.5))  # a random moment, by design
        first.kill()
        gemini.set_latency(0.02)
        bot()

        def replies() -> collections.Counter[tuple[int, int]]:
            return collections.Counter(
                (chat, m.reply_to_message_id)
                for chat in {c for c, _ in voices}
                for m in telegram.bot_messages(chat)
                if m.reply_to_message_id
            )

        telegram.wait_until(lambda: set(voices) <= set(replies()), 60, "every note")
        counts = replies()
        answered = sum(1 for voice in voices if counts[voice] >= 1)
        extra = sum(counts[voice] - 1 for voice in voices if counts[voice] > 1)
        return notes, answered, extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--notes", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    totals = collections.Counter[str]()
    with admin_url() as url:
        databases = DatabaseFactory(url)
        databases.create_template()
        try:
            for _ in range(args.trials):
                sent, answered, extra = trial(databases.fresh(), args.notes, rng)
                totals.update(sent=sent, answered=answered, extra=extra)
                totals["crashes_with_duplicates"] += int(extra > 0)
        finally:
            databases.drop_all()
    print(
        f"crash window: {args.trials} kills while replying; {totals['sent']} notes,"
        f" {totals['answered']} answered, {totals['extra']} answered twice"
        f" ({totals['extra'] / max(1, totals['sent']):.2%} of notes;"
        f" {totals['crashes_with_duplicates']} of {args.trials} crashes)"
    )


if __name__ == "__main__":
    main()
