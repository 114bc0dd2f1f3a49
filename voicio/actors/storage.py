"""The StorageActor: every database write goes through it, in order.

Writes arriving together share one transaction (group commit): the actor
commits when its mailbox runs dry, after `batch_limit` operations, or at once
for an operation marked durable (the inbox write Telegram's acknowledgement
waits for). While the database is unreachable it holds the uncommitted batch,
retries with backoff and replays the batch on a fresh connection; every
operation is idempotent, so a replay is harmless.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, TypeVar, cast

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from voicio.actors.base import ThreadedActor
from voicio.actors.futures import CallbackFuture
from voicio.domain import ChatRef, ChatSettings, Mode, Person, Summary, Transcription
from voicio.storage import repository as repo

logger = logging.getLogger(__name__)

T = TypeVar("T")

_UNAVAILABLE = (psycopg.OperationalError, PoolTimeout)


@dataclass(frozen=True)
class Query(Generic[T]):
    """One unit of database work: a function of an open connection."""

    run: Callable[[repo.Conn], T]
    durable: bool = False
    # Fire-and-forget: a failure is logged, as nobody waits for the answer.
    told: bool = False
    name: str = "query"


@dataclass(frozen=True)
class ChatState:
    """What a ChatActor loads when it starts."""

    settings: ChatSettings | None
    pending: list[repo.PendingUpdate]


@dataclass(frozen=True)
class NoteView:
    """A stored note with its summary in one mode, for buttons and replays."""

    note: repo.StoredNote
    summary: str | None


class StorageActor(ThreadedActor):
    """Own the connection pool and run Queries in arrival order."""

    def __init__(
        self,
        pool: ConnectionPool,
        closing: threading.Event,
        batch_limit: int = 256,
    ) -> None:
        super().__init__()
        self._pool = pool
        self._closing = closing
        self._batch_limit = batch_limit
        self._conn: repo.Conn | None = None
        self._batch: list[Query[Any]] = []

    def on_receive(self, message: Any) -> Any:
        if not isinstance(message, Query):
            return super().on_receive(message)
        result = self._run(message)
        if (
            message.durable
            or len(self._batch) >= self._batch_limit
            or self.actor_inbox.empty()
        ):
            self._commit()
        return result

    def on_stop(self) -> None:
        self._commit()

    def _run(self, query: Query[T]) -> T | None:
        while True:
            try:
                result = query.run(self._connection())
            except _UNAVAILABLE as exc:
                self._recover(exc)
                continue
            except Exception:
                self._discard_failed(query)
                if query.told:
                    logger.exception("Database write %r failed; skipped", query.name)
                    return None
                raise
            self._batch.append(query)
            return result

    def _commit(self) -> None:
        while self._conn is not None:
            try:
                self._conn.commit()
            except _UNAVAILABLE as exc:
                self._recover(exc)
                continue
            self._release()
            self._batch.clear()

    def _connection(self) -> repo.Conn:
        if self._conn is None:
            self._conn = self._pool.getconn(timeout=10.0)
        return self._conn

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool.putconn(conn)

    def _discard_failed(self, failed: Query[Any]) -> None:
        """Roll back after a bad query and redo the rest of the batch."""
        logger.warning(
            "Query %r failed; replaying %d others", failed.name, len(self._batch)
        )
        self._rollback()
        self._replay()

    def _recover(self, error: Exception) -> None:
        """Wait for the database, then redo the uncommitted batch."""
        delay = 0.2
        while not self._closing.is_set():
            logger.warning(
                "Database unavailable (%s); %d writes held, retrying in %.1fs",
                error,
                len(self._batch),
                delay,
            )
            self._rollback()
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
            try:
                # Test idle connections now rather than one by one later.
                self._pool.check()
                self._replay()
            except _UNAVAILABLE as exc:
                error = exc
                continue
            logger.info(
                "Database reachable again; %d writes replayed", len(self._batch)
            )
            return
        raise RuntimeError("shutting down while the database is unavailable") from error

    def _replay(self) -> None:
        """Run the held batch again on a fresh connection, dropping bad queries."""
        while True:
            conn = self._connection()
            for query in self._batch:
                try:
                    query.run(conn)
                except _UNAVAILABLE:
                    raise
                except Exception:
                    logger.exception("Replayed query %r failed; dropped", query.name)
                    self._batch.remove(query)
                    self._rollback()
                    break
            else:
                return

    def _rollback(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.rollback()
        except _UNAVAILABLE:
            conn.close()
        self._pool.putconn(conn)


class StorageClient:
    """Typed calls to the StorageActor, usable from any thread."""

    def __init__(self, ref: Any) -> None:
        self._ref = ref

    def ask(self, query: Query[T]) -> CallbackFuture[T]:
        return cast(CallbackFuture[T], self._ref.ask(query, block=False))

    def tell(self, run: Callable[[repo.Conn], object], name: str) -> None:
        self._ref.tell(Query(run, told=True, name=name))

    # -- inbox -----------------------------------------------------------------

    def store_update(
        self, update_id: int, chat_id: int | None, payload: dict[str, Any]
    ) -> CallbackFuture[bool]:
        """Store an update; True if it is new. `sync()` makes it durable."""
        run = partial(
            repo.store_update, update_id=update_id, chat_id=chat_id, payload=payload
        )
        return self.ask(Query(run, name="store_update"))

    def sync(self) -> CallbackFuture[None]:
        """Answer once every write sent before this call is committed."""
        return self.ask(Query(_nothing, durable=True, name="sync"))

    def finish_update(self, update_id: int, outcome: str) -> None:
        self.tell(
            partial(repo.finish_update, update_id=update_id, outcome=outcome),
            "finish_update",
        )

    def chats_with_pending_updates(
        self, older_than: float = 0.0
    ) -> CallbackFuture[list[int]]:
        run = partial(repo.chats_with_pending_updates, older_than=older_than)
        return self.ask(Query(run, name="pending_chats"))

    def pending_updates(self, chat_id: int) -> CallbackFuture[list[repo.PendingUpdate]]:
        run = partial(repo.pending_updates, chat_id=chat_id)
        return self.ask(Query(run, name="pending_updates"))

    # -- chats -----------------------------------------------------------------

    def load_chat_state(self, chat_id: int) -> CallbackFuture[ChatState]:
        def run(conn: repo.Conn) -> ChatState:
            return ChatState(*repo.load_chat_state(conn, chat_id))

        return self.ask(Query(run, name="load_chat_state"))

    def save_chat(self, chat: ChatRef, sender: Person | None) -> None:
        self.tell(partial(repo.save_chat, chat=chat, sender=sender), "save_chat")

    def save_settings(self, chat_id: int, settings: ChatSettings) -> None:
        self.tell(
            partial(repo.save_settings, chat_id=chat_id, settings=settings),
            "save_settings",
        )

    # -- notes -----------------------------------------------------------------

    def prepare_note(
        self, note: repo.NewNote, summary_language: str
    ) -> CallbackFuture[repo.NotePrep]:
        """Record an arriving note and return what is already known about it."""
        run = partial(repo.prepare_note, note=note, summary_language=summary_language)
        return self.ask(Query(run, name="prepare_note"))

    def save_transcription(
        self,
        chat_id: int,
        message_id: int,
        summary_language: str,
        result: Transcription,
        mode: Mode,
    ) -> None:
        run = partial(
            repo.save_transcription,
            chat_id=chat_id,
            message_id=message_id,
            summary_language=summary_language,
            result=result,
            mode=mode,
        )
        self.tell(run, "save_transcription")

    def save_summary(
        self,
        chat_id: int,
        message_id: int,
        mode: Mode,
        summary_language: str,
        summary: Summary,
    ) -> None:
        run = partial(
            repo.save_summary,
            chat_id=chat_id,
            message_id=message_id,
            mode=mode,
            summary_language=summary_language,
            summary=summary,
        )
        self.tell(run, "save_summary")

    def fail_note(self, chat_id: int, message_id: int, error: str) -> None:
        run = partial(
            repo.fail_note, chat_id=chat_id, message_id=message_id, error=error
        )
        self.tell(run, "fail_note")

    def finish_note(
        self,
        chat_id: int,
        message_id: int,
        update_id: int,
        reply_ids: list[int],
        outcome: str,
    ) -> None:
        """Record the replies sent for a note and close its update."""
        run = partial(
            repo.finish_note,
            chat_id=chat_id,
            message_id=message_id,
            update_id=update_id,
            reply_ids=reply_ids,
            outcome=outcome,
        )
        self.tell(run, "finish_note")

    def note_view(
        self, chat_id: int, message_id: int, mode: Mode, summary_language: str
    ) -> CallbackFuture[NoteView | None]:
        def run(conn: repo.Conn) -> NoteView | None:
            note = repo.load_note(conn, chat_id, message_id)
            if note is None:
                return None
            summary = repo.load_summary(
                conn, chat_id, message_id, mode, summary_language
            )
            return NoteView(note, summary)

        return self.ask(Query(run, name="note_view"))

    def set_shown_mode(self, chat_id: int, message_id: int, mode: Mode) -> None:
        run = partial(
            repo.set_shown_mode, chat_id=chat_id, message_id=message_id, mode=mode
        )
        self.tell(run, "set_shown_mode")

    # -- history and privacy --------------------------------------------------

    def history_entry(
        self, chat_id: int, position: int, summary_language: str
    ) -> CallbackFuture[repo.HistoryEntry | None]:
        run = partial(
            repo.history_entry,
            chat_id=chat_id,
            position=position,
            summary_language=summary_language,
        )
        return self.ask(Query(run, name="history_entry"))

    def delete_note(self, chat_id: int, message_id: int) -> CallbackFuture[bool]:
        run = partial(repo.delete_note, chat_id=chat_id, message_id=message_id)
        return self.ask(Query(run, name="delete_note"))

    def forget_chat(self, chat_id: int) -> CallbackFuture[int]:
        run = partial(repo.forget_chat, chat_id=chat_id)
        return self.ask(Query(run, durable=True, name="forget_chat"))

    def purge_expired(self, retention_days: int) -> CallbackFuture[tuple[int, int]]:
        run = partial(repo.purge_expired, retention_days=retention_days)
        return self.ask(Query(run, name="purge_expired"))

    # -- the chat itself ------------------------------------------------------

    def migrate_chat(self, old_id: int, new_id: int) -> None:
        run = partial(repo.migrate_chat, old_id=old_id, new_id=new_id)
        self.tell(run, "migrate_chat")

    def set_unreachable(self, chat_id: int, unreachable: bool) -> None:
        run = partial(repo.set_unreachable, chat_id=chat_id, unreachable=unreachable)
        self.tell(run, "set_unreachable")


def _nothing(conn: repo.Conn) -> None:
    """Run no SQL: a durable no-op commits the writes queued before it."""
