"""Which Voicio instance acts for which chat, when several share one database.

Each chat is owned by at most one running instance: the one holding the
session advisory lock whose key is the chat id, on its ownership connection
(a direct one; a transaction-mode pooler would hand the lock to strangers).
A lock dies with its connection, so a crashed instance's chats become free
at once.

An instance that receives an update for a chat another instance owns stores
it and sends a NOTIFY on `voicio_chat`; the owner, listening, loads the
chat's unfinished updates. NOTIFY is only a wake-up call: a periodic scan of
the inbox (the Supervisor's) catches anything a lost notification or a dead
owner left behind.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from voicio.actors.base import ThreadedActor

logger = logging.getLogger(__name__)

CHANNEL = "voicio_chat"


@dataclass(frozen=True)
class Claim:
    """Take a chat if nobody holds it; answers True if this instance owns it."""

    chat_id: int


@dataclass(frozen=True)
class Release:
    """Let a chat go (its actor stopped and its writes are committed)."""

    chat_id: int


@dataclass(frozen=True)
class Notify:
    """Wake whichever instance owns the chat: it has new updates."""

    chat_id: int


class OwnershipActor(ThreadedActor):
    """Hold this instance's chat locks on one connection."""

    def __init__(self, url: str, on_lost: Callable[[], None]) -> None:
        super().__init__()
        self._url = url
        self._on_lost = on_lost
        self._conn: psycopg.Connection[Any] | None = None
        self._owned: set[int] = set()

    def on_stop(self) -> None:
        if self._conn is not None:
            self._conn.close()  # releases every lock at once

    def on_receive(self, message: Any) -> Any:
        try:
            match message:
                case Claim(chat_id=chat_id):
                    return self._claim(chat_id)
                case Release(chat_id=chat_id):
                    self._release(chat_id)
                case Notify(chat_id=chat_id):
                    self._execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(chat_id)))
                case _:
                    return super().on_receive(message)
        except psycopg.Error as exc:
            self._lose(exc)
            if isinstance(message, Claim):
                return False
        return None

    def _claim(self, chat_id: int) -> bool:
        if chat_id in self._owned:
            return True
        row = self._execute("SELECT pg_try_advisory_lock(%s)", (chat_id,))
        if row is not None and row[0]:
            self._owned.add(chat_id)
            return True
        return False

    def _release(self, chat_id: int) -> None:
        if chat_id in self._owned:
            self._owned.discard(chat_id)
            self._execute("SELECT pg_advisory_unlock(%s)", (chat_id,))

    def _execute(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._url, autocommit=True, connect_timeout=5)
        return self._conn.execute(sql.encode(), params).fetchone()

    def _lose(self, error: Exception) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._owned:
            logger.error(
                "Lost the ownership connection (%s): %d chats are no longer ours",
                error,
                len(self._owned),
            )
            self._owned.clear()
            self._on_lost()
        else:
            logger.warning("Ownership connection failed (%s); reconnecting", error)


class Listener:
    """Wait for NOTIFYs on `voicio_chat` on a thread of its own."""

    def __init__(self, url: str, wake: Callable[[int], None]) -> None:
        self._url = url
        self._wake = wake
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="listener", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        delay = 0.5
        while not self._stopping.is_set():
            try:
                self._listen()
                delay = 0.5
            except psycopg.Error as exc:
                logger.warning("Listener lost its connection (%s); retrying", exc)
                self._stopping.wait(delay)
                delay = min(delay * 2, 10.0)

    def _listen(self) -> None:
        with psycopg.connect(self._url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"LISTEN {CHANNEL}".encode())
            while not self._stopping.is_set():
                for notice in conn.notifies(timeout=1.0):
                    self._deliver(notice.payload)

    def _deliver(self, payload: str) -> None:
        try:
            chat_id = int(payload)
        except ValueError:
            logger.warning("Ignoring a %s notification %r", CHANNEL, payload[:40])
            return
        self._wake(chat_id)
