"""Several `voicio run` machines on one database, behind a load balancer."""

from __future__ import annotations

import collections
import itertools
import socket
from collections.abc import Iterator

import pytest

from tests.conftest import BotFactory
from tests.fakes.gemini_api import FakeGemini
from tests.fakes.telegram_api import FakeChat, FakeTelegram, FakeUser
from tests.support.proxy import RandomProxy
from tests.support.voices import english_notes

pytestmark = pytest.mark.slow

SECRET = "instances-secret-0123456789"
CHATS = [
    (FakeChat(700 + i, "private"), FakeUser(700 + i, f"User{i}"))
    if i % 4
    else (FakeChat(-7000 - i, "group", title=f"Group {i}"), FakeUser(700 + i, f"U{i}"))
    for i in range(20)
]
_unique = itertools.count(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def proxy() -> Iterator[RandomProxy]:
    balancer = RandomProxy([])
    balancer.start()
    yield balancer
    balancer.stop()


def send_round(telegram: FakeTelegram, notes_per_chat: int) -> dict[int, list[int]]:
    sent: dict[int, list[int]] = collections.defaultdict(list)
    audio = english_notes()
    for _ in range(notes_per_chat):
        for chat, user in CHATS:
            data = audio[next(_unique) % 24].data + next(_unique).to_bytes(4, "big")
            sent[chat.id].append(telegram.send_voice(chat, user, data, duration=3))
    return sent


def answered(telegram: FakeTelegram, chat_id: int) -> list[int]:
    return [
        m.reply_to_message_id
        for m in telegram.bot_messages(chat_id)
        if m.reply_to_message_id is not None
    ]


def wait_all(
    telegram: FakeTelegram, sent: dict[int, list[int]], timeout: float
) -> None:
    telegram.wait_until(
        lambda: all(len(answered(telegram, c)) >= len(ids) for c, ids in sent.items()),
        timeout,
        what="every note answered",
    )


def test_two_machines_keep_each_chats_order_and_survive_one_dying(
    start_bot: BotFactory,
    telegram: FakeTelegram,
    gemini: FakeGemini,
    proxy: RandomProxy,
) -> None:
    ports = [free_port(), free_port()]
    proxy.upstreams[:] = [f"http://127.0.0.1:{port}" for port in ports]
    env = {
        "WEBHOOK_URL": proxy.url,
        "WEBHOOK_SECRET": SECRET,
        "GEMINI_CONCURRENCY": "8",
    }
    first = start_bot(env={**env, "PORT": str(ports[0])})
    second = start_bot(env={**env, "PORT": str(ports[1])})
    gemini.set_latency(0.05)

    early = send_round(telegram, 5)
    wait_all(telegram, early, timeout=90)
    gemini.set_latency(2.0)
    late = send_round(telegram, 5)
    gemini.wait_until(
        lambda: sum(r.finished is None for r in gemini.requests) >= 8,
        what="notes at Gemini from both machines",
    )
    first.kill()
    gemini.set_latency(0.05)

    sent = {chat: early[chat] + late[chat] for chat in early}
    wait_all(telegram, sent, timeout=120)
    for chat_id, ids in sent.items():
        assert answered(telegram, chat_id) == ids, f"chat {chat_id} out of order"
    assert sum(len(ids) for ids in sent.values()) == 200
    assert all(count > 20 for count in proxy.forwarded.values())
    assert len(proxy.forwarded) == 2
    # The survivor took the dead machine's chats over from the inbox.
    second.wait_for_log(r"resuming \d+ unfinished updates|Replaying unfinished")
