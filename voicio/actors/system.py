"""Start and stop Voicio's actors as one system."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from psycopg_pool import ConnectionPool
from pykka import ActorDeadError, ActorRef, Timeout

from voicio.actors.chat import BotInfo, ChatActor, ChatDeps
from voicio.actors.dispatch import Dispatcher
from voicio.actors.futures import CallbackFuture
from voicio.actors.gemini_pool import GeminiPool, ModelClient
from voicio.actors.ownership import Listener, OwnershipActor
from voicio.actors.ports import TelegramPort
from voicio.actors.runner import AsyncRunner
from voicio.actors.stats import SnapshotCollector, Stats
from voicio.actors.storage import StorageActor, StorageClient
from voicio.actors.supervisor import (
    GetSnapshot,
    OwnershipGone,
    ReplayPending,
    Route,
    Supervisor,
    SupervisorSnapshot,
    Wake,
)
from voicio.audio.prepare import AudioPreparer
from voicio.domain import Inbound

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SystemConfig:
    """The knobs of the actor system."""

    gemini_concurrency: int = 8
    gemini_max_attempts: int = 6
    chat_threads: int = 8
    chat_idle_seconds: float = 120.0
    stats_interval_seconds: float = 60.0
    max_file_bytes: int = 20 * 1024 * 1024
    ack_delay_seconds: float = 0.5
    retention_days: int = 90
    long_audio_seconds: float = 900.0
    shared_inbox: bool = False


class ActorSystem:
    """The Supervisor, its ChatActors, the GeminiPool and the StorageActor."""

    def __init__(
        self,
        *,
        config: SystemConfig,
        db_pool: ConnectionPool,
        model: ModelClient,
        port: TelegramPort,
        loop: asyncio.AbstractEventLoop,
        parse_update: Callable[[dict[str, Any]], Inbound | None],
        bot: BotInfo,
        ownership_url: str,
        stats: Stats | None = None,
    ) -> None:
        self.stats = stats or Stats()
        self.runner = AsyncRunner(loop)
        self._model = model
        self._closing = threading.Event()
        self._storage_ref = StorageActor.start(db_pool, self._closing)
        self.storage = StorageClient(self._storage_ref)
        self.dispatcher = Dispatcher("chat", config.chat_threads)
        audio = AudioPreparer(port.download, config.max_file_bytes)
        self._pool_ref = GeminiPool.start(
            client=model,
            audio=audio,
            runner=self.runner,
            stats=self.stats,
            limit=config.gemini_concurrency,
            max_attempts=config.gemini_max_attempts,
        )
        deps = ChatDeps(
            dispatcher=self.dispatcher,
            storage=self.storage,
            pool=self._pool_ref,
            port=port,
            runner=self.runner,
            stats=self.stats,
            parse_update=parse_update,
            bot=bot,
            audio=audio,
            ack_delay=config.ack_delay_seconds,
            retention_days=config.retention_days,
            long_audio_seconds=config.long_audio_seconds,
            shared_inbox=config.shared_inbox,
        )

        def make_chat(chat_id: int, supervisor: ActorRef[Any]) -> ActorRef[Any]:
            return ChatActor.start(chat_id, supervisor, deps)

        self.stats.registry.register(SnapshotCollector(self.read_snapshot))
        self._listener = Listener(ownership_url, self._wake)
        # Chat ownership matters only when other instances can exist: in
        # webhook mode. A polling instance is the bot's only consumer.
        self._ownership_ref = (
            OwnershipActor.start(ownership_url, self._ownership_gone)
            if config.shared_inbox
            else None
        )
        self._supervisor: ActorRef[Supervisor] = Supervisor.start(
            make_chat=make_chat,
            storage=self.storage,
            pool=self._pool_ref,
            ownership=self._ownership_ref,
            runner=self.runner,
            stats=self.stats,
            idle_seconds=config.chat_idle_seconds,
            # Only webhook mode can have other instances to watch for.
            scan_interval=5.0 if config.shared_inbox else 0.0,
            retention_days=config.retention_days,
            stats_interval=config.stats_interval_seconds,
        )

    def _ownership_gone(self) -> None:
        self._supervisor.tell(OwnershipGone())

    def _wake(self, chat_id: int) -> None:
        self._supervisor.tell(Wake(chat_id))

    def listen(self) -> None:
        """Start taking wake-up calls from other instances (webhook mode)."""
        if self._ownership_ref is not None:
            self._listener.start()

    def route(self, event: Inbound, stored: CallbackFuture[bool] | None = None) -> None:
        """Hand an update to its chat's actor; `stored` tells if it is new."""
        self._supervisor.tell(Route(event, stored))

    def replay_pending(self) -> None:
        """Restart work on every update left unfinished by an earlier run."""
        self._supervisor.tell(ReplayPending())

    def read_snapshot(self, timeout: float = 1.0) -> SupervisorSnapshot | None:
        """Return the current gauges, or None if the actors do not answer."""
        try:
            return cast(SupervisorSnapshot, self.snapshot().get(timeout=timeout))
        except (Timeout, ActorDeadError):
            return None

    @property
    def running(self) -> bool:
        return self._supervisor.is_alive() and self._storage_ref.is_alive()

    def snapshot(self) -> CallbackFuture[SupervisorSnapshot]:
        future = self._supervisor.ask(GetSnapshot(), block=False)
        return cast(CallbackFuture[SupervisorSnapshot], future)

    def drain(self, timeout: float) -> bool:
        """Wait (up to `timeout` s) until no chat has work under way.

        Call after intake has stopped. Returns False if work remained; it is
        still in the inbox and the next start replays it.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                snapshot = self.snapshot().get(
                    timeout=max(0.1, deadline - time.monotonic())
                )
            except Timeout:
                return False
            if snapshot.busy_chats == 0:
                return True
            if time.monotonic() >= deadline:
                logger.warning(
                    "Drain period over with %d chats busy; their work will be replayed",
                    snapshot.busy_chats,
                )
                return False
            # Polled, not awaited: this runs once, at shutdown.
            time.sleep(0.1)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every actor; unfinished work stays in the inbox for the next run."""
        self._closing.set()
        if self._ownership_ref is not None:
            self._listener.stop()
        for ref in (self._supervisor, self._pool_ref):
            _stop(ref, timeout)
        # ChatActors run on the dispatcher; their pending updates are replayed.
        self.dispatcher.shutdown(timeout)
        _stop(self._storage_ref, timeout)
        # Last: closing the ownership connection frees this instance's chats
        # only after their writes are committed.
        if self._ownership_ref is not None:
            _stop(self._ownership_ref, timeout)
        # Called off the event loop (which must keep running for this).
        closing = self.runner.run(self._model.aclose())
        try:
            if closing is not None:
                closing.result(timeout)
        except Exception:
            logger.warning("The model client did not close cleanly", exc_info=True)


def _stop(ref: ActorRef[Any], timeout: float) -> None:
    try:
        ref.stop(block=True, timeout=timeout)
    except (Timeout, ActorDeadError):
        logger.warning("%s did not stop within %.0fs", ref, timeout)
