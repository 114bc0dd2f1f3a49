"""The Supervisor: one ChatActor per chat, started on demand, stopped when idle.

It routes each update to its chat's actor, creating the actor when needed.
An actor idle for `idle_seconds` is asked to stop (its state lives in the
database and reloads with the next update). A crashed actor is restarted
with exponential backoff; more than `max_restarts` crashes within
`restart_window` seconds quarantine the chat for a window, so a poison update
cannot spin the system. Updates arriving meanwhile are safe in the inbox: the
next actor for the chat replays everything unfinished.

Before starting a chat's actor it claims the chat (see `ownership`): when
several instances share the database, a chat another instance owns is left
to it, with a wake-up call. With `scan_interval` set (webhook mode, where
several instances may run), it also looks that often for updates that have
waited too long in chats it has no actor for (a lost wake-up, a dead
instance) and claims those chats.

Every `stats_interval` seconds it logs one line of actor statistics.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from pykka import ActorDeadError, ActorRef, Timeout

from voicio.actors.base import ThreadedActor
from voicio.actors.dispatch import mailbox_depth
from voicio.actors.futures import CallbackFuture
from voicio.actors.gemini_pool import GetPoolStats, PoolStats
from voicio.actors.messages import (
    ChildFailed,
    ChildIdle,
    Deliver,
    Passivate,
    Passivated,
    PassivateDeclined,
    Reload,
)
from voicio.actors.ownership import Claim, Notify, Release
from voicio.actors.runner import AsyncRunner
from voicio.actors.stats import Stats, StatsSnapshot
from voicio.actors.storage import StorageClient
from voicio.domain import Inbound

logger = logging.getLogger(__name__)

ChatFactory = Callable[[int, ActorRef[Any]], ActorRef[Any]]

PURGE_INTERVAL_SECONDS = 3600.0


@dataclass(frozen=True)
class Route:
    """An update for whichever actor owns its chat.

    `stored` answers True once the update is in the inbox for the first time,
    False if it was there already (a redelivery).
    """

    event: Inbound
    stored: CallbackFuture[bool] | None = None


@dataclass(frozen=True)
class ReplayPending:
    """Start actors for every chat with unfinished updates in the inbox."""


@dataclass(frozen=True)
class GetSnapshot:
    """Ask for a SupervisorSnapshot."""


@dataclass(frozen=True)
class SupervisorSnapshot:
    """The actor system's gauges at one moment."""

    live_chats: int
    busy_chats: int
    mailbox_max: int
    mailbox_total: int
    restarts: int
    quarantined: int
    pool: PoolStats | None
    stats: StatsSnapshot


@dataclass(frozen=True)
class _Tick:
    pass


@dataclass(frozen=True)
class _Restart:
    chat_id: int


@dataclass(frozen=True)
class _Replay:
    chat_ids: list[int]


@dataclass(frozen=True)
class Wake:
    """A chat has unfinished updates in the inbox (another instance said so)."""

    chat_id: int


@dataclass(frozen=True)
class OwnershipGone:
    """Every chat lock was lost with the ownership connection."""


@dataclass(frozen=True)
class _Claimed:
    chat_id: int
    ours: bool


@dataclass(frozen=True)
class _Synced:
    chat_id: int


@dataclass
class _Child:
    ref: ActorRef[Any] | None
    # claiming | running | passivating | restarting | quarantined
    state: str = "running"
    buffer: list[Deliver] = field(default_factory=list)
    idle_since: float | None = None
    # Woken while passivating: start again to load what is waiting.
    reload: bool = False
    failures: deque[float] = field(default_factory=deque)


class Supervisor(ThreadedActor):
    """Own the ChatActors: create, route, passivate, restart."""

    def __init__(
        self,
        *,
        make_chat: ChatFactory,
        storage: StorageClient,
        pool: ActorRef[Any],
        ownership: ActorRef[Any] | None,
        runner: AsyncRunner,
        stats: Stats,
        idle_seconds: float,
        stats_interval: float,
        scan_interval: float = 0.0,
        retention_days: int = 90,
        max_restarts: int = 5,
        restart_window: float = 60.0,
    ) -> None:
        super().__init__()
        self._make_chat = make_chat
        self._storage = storage
        self._pool = pool
        self._ownership = ownership
        self._scan_interval = scan_interval
        self._next_scan = time.monotonic() + scan_interval
        self._retention_days = retention_days
        # The first purge runs a minute after start, then hourly.
        self._next_purge = time.monotonic() + 60.0
        self._runner = runner
        self._stats = stats
        self._idle_seconds = idle_seconds
        self._stats_interval = stats_interval
        self._max_restarts = max_restarts
        self._restart_window = restart_window
        self._children: dict[int, _Child] = {}
        self._restarts = 0
        self._tick_every = min(
            stats_interval, scan_interval or stats_interval, max(0.05, idle_seconds / 2)
        )
        self._next_stats = time.monotonic() + stats_interval

    def on_start(self) -> None:
        self._schedule_tick()

    def on_receive(self, message: Any) -> Any:
        match message:
            case Route():
                self._route(message)
            case ChildIdle(chat_id=chat_id):
                self._on_idle(chat_id)
            case Passivated(chat_id=chat_id):
                self._on_passivated(chat_id)
            case PassivateDeclined(chat_id=chat_id):
                self._on_declined(chat_id)
            case ChildFailed():
                self._on_failed(message)
            case _Restart(chat_id=chat_id):
                self._on_restart(chat_id)
            case ReplayPending():
                self._scan(older_than=0.0)
            case _Replay(chat_ids=chat_ids):
                self._on_replay(chat_ids)
            case Wake(chat_id=chat_id):
                self._wake(chat_id)
            case _Claimed(chat_id=chat_id, ours=ours):
                self._on_claimed(chat_id, ours)
            case _Synced(chat_id=chat_id):
                self._release_if_gone(chat_id)
            case OwnershipGone():
                self._on_ownership_gone()
            case _Tick():
                self._on_tick()
            case GetSnapshot():
                return self._snapshot()
            case _:
                return super().on_receive(message)
        return None

    # -- routing -----------------------------------------------------------------

    def _route(self, route: Route) -> None:
        event = route.event
        chat_id = event.chat.id
        child = self._children.get(chat_id)
        if child is None:
            child = self._claim(chat_id)
        if child.state in ("claiming", "passivating"):
            child.buffer.append(Deliver(event, route.stored))
        elif child.state == "running":
            self._deliver(chat_id, child, Deliver(event, route.stored))
        else:
            logger.debug(
                "Chat %s is %s; update %s waits in the inbox",
                chat_id,
                child.state,
                event.update_id,
            )

    def _deliver(self, chat_id: int, child: _Child, delivery: Deliver) -> None:
        assert child.ref is not None
        child.idle_since = None
        try:
            child.ref.tell(delivery)
        except ActorDeadError:
            # It crashed and its ChildFailed is on the way; the restart
            # replays this update from the inbox.
            logger.debug(
                "Chat %s actor is dead; update %s left to the replay",
                chat_id,
                delivery.event.update_id,
            )

    # -- ownership ---------------------------------------------------------------

    def _claim(self, chat_id: int) -> _Child:
        """Ask for the chat's lock; deliveries wait in the buffer meanwhile."""
        child = self._children[chat_id] = _Child(None, state="claiming")
        me = self.actor_ref
        if self._ownership is None:
            # The only instance (polling): every chat is ours without asking.
            me.tell(_Claimed(chat_id, True))
            return child
        future = cast(
            CallbackFuture[bool], self._ownership.ask(Claim(chat_id), block=False)
        )
        future.add_done_callback(
            lambda done: _tell_quietly(me, _Claimed(chat_id, done.outcome()[0] is True))
        )
        return child

    def _on_claimed(self, chat_id: int, ours: bool) -> None:
        child = self._children.get(chat_id)
        if child is None or child.state != "claiming":
            return
        if ours:
            buffered, child.buffer = child.buffer, []
            fresh = self._start_child(chat_id)
            for delivery in buffered:
                self._deliver(chat_id, fresh, delivery)
            return
        # Another instance owns it: its updates are in the inbox; wake the
        # owner once they are committed.
        del self._children[chat_id]
        ownership = self._ownership
        assert ownership is not None
        logger.debug("Chat %s is another instance's; waking it", chat_id)
        self._storage.sync().add_done_callback(
            lambda _: _tell_quietly(ownership, Notify(chat_id))
        )

    def _wake(self, chat_id: int) -> None:
        child = self._children.get(chat_id)
        if child is None:
            self._claim(chat_id)
        elif child.state == "running" and child.ref is not None:
            _tell_quietly(child.ref, Reload())
        elif child.state == "passivating":
            child.reload = True

    def _release_if_gone(self, chat_id: int) -> None:
        # Released only if no new actor took the chat while the writes of the
        # old one were committing (the lock would then still be needed).
        if chat_id not in self._children and self._ownership is not None:
            self._ownership.tell(Release(chat_id))

    def _on_ownership_gone(self) -> None:
        """Stop every chat actor: another instance may be taking its chat."""
        logger.error("Chat locks lost; stopping %d chat actors", len(self._children))
        for child in self._children.values():
            if child.ref is not None:
                _stop_quietly(child.ref)
        self._children.clear()

    def _start_child(self, chat_id: int) -> _Child:
        ref = self._make_chat(chat_id, self.actor_ref)
        child = self._children.get(chat_id)
        if child is None:
            child = self._children[chat_id] = _Child(ref)
        child.ref, child.state, child.idle_since = ref, "running", None
        return child

    # -- passivation ---------------------------------------------------------------

    def _on_idle(self, chat_id: int) -> None:
        child = self._children.get(chat_id)
        if child is not None and child.state == "running":
            child.idle_since = time.monotonic()

    def _passivate_idle(self, now: float) -> None:
        for child in self._children.values():
            idle = child.idle_since
            due = idle is not None and now - idle >= self._idle_seconds
            if child.state == "running" and due and child.ref is not None:
                child.state = "passivating"
                child.ref.tell(Passivate())

    def _on_passivated(self, chat_id: int) -> None:
        child = self._children.pop(chat_id, None)
        if child is None:
            return
        if child.buffer or child.reload:
            # Work arrived while it was stopping: it needs a new actor (which
            # loads the chat's unfinished updates).
            fresh = self._start_child(chat_id)
            for delivery in child.buffer:
                self._deliver(chat_id, fresh, delivery)
            return
        if self._ownership is None:
            return
        # Let the chat go once the stopped actor's writes are committed, so
        # the next owner sees them.
        me = self.actor_ref
        self._storage.sync().add_done_callback(
            lambda _: _tell_quietly(me, _Synced(chat_id))
        )

    def _on_declined(self, chat_id: int) -> None:
        child = self._children.get(chat_id)
        if child is None:
            return
        child.state = "running"
        buffered, child.buffer = child.buffer, []
        for delivery in buffered:
            self._deliver(chat_id, child, delivery)

    # -- failures ------------------------------------------------------------------

    def _on_failed(self, failure: ChildFailed) -> None:
        child = self._children.get(failure.chat_id)
        if (
            child is None
            or child.ref is None
            or child.ref.actor_urn != failure.actor_urn
        ):
            return
        now = time.monotonic()
        child.failures.append(now)
        while child.failures and now - child.failures[0] > self._restart_window:
            child.failures.popleft()
        child.ref, child.buffer = None, []
        if len(child.failures) > self._max_restarts:
            child.state = "quarantined"
            logger.error(
                "Chat %s crashed %d times in %.0fs (%s); quarantined for %.0fs",
                failure.chat_id,
                len(child.failures),
                self._restart_window,
                failure.error,
                self._restart_window,
            )
            self._after(self._restart_window, _Restart(failure.chat_id))
            return
        delay = min(30.0, 0.5 * 2 ** (len(child.failures) - 1))
        delay *= random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not crypto
        child.state = "restarting"
        logger.warning(
            "Chat %s actor crashed (%s); restarting in %.1fs",
            failure.chat_id,
            failure.error,
            delay,
        )
        self._after(delay, _Restart(failure.chat_id))

    def _on_restart(self, chat_id: int) -> None:
        child = self._children.get(chat_id)
        if child is None or child.state not in ("restarting", "quarantined"):
            return
        self._restarts += 1
        self._start_child(chat_id)

    # -- replay at start-up --------------------------------------------------------

    def _scan(self, older_than: float) -> None:
        """Find chats whose updates have waited longer than `older_than` s."""
        me = self.actor_ref
        future = self._storage.chats_with_pending_updates(older_than)
        future.add_done_callback(
            lambda done: _tell_quietly(me, _Replay(done.outcome()[0] or []))
        )

    def _on_replay(self, chat_ids: list[int]) -> None:
        # Chats with an actor here know their work; the others need one.
        waiting = [chat_id for chat_id in chat_ids if chat_id not in self._children]
        if waiting:
            logger.info("Replaying unfinished updates of %d chats", len(waiting))
        for chat_id in waiting:
            self._claim(chat_id)

    # -- timers and stats ------------------------------------------------------------

    def _after(self, delay: float, message: Any) -> None:
        me = self.actor_ref
        self._runner.call_later(delay, lambda: _tell_quietly(me, message))

    def _schedule_tick(self) -> None:
        self._after(self._tick_every, _Tick())

    def _on_tick(self) -> None:
        now = time.monotonic()
        self._passivate_idle(now)
        if now >= self._next_purge:
            self._next_purge = now + PURGE_INTERVAL_SECONDS
            self._purge()
        if self._scan_interval and now >= self._next_scan:
            self._next_scan = now + self._scan_interval
            self._scan(older_than=self._scan_interval)
        if now >= self._next_stats:
            self._next_stats = now + self._stats_interval
            self._log_stats()
        self._schedule_tick()

    def _purge(self) -> None:
        """Delete notes older than the retention period (and old inbox rows)."""

        def purged(done: CallbackFuture[tuple[int, int]]) -> None:
            counts, error = done.outcome()
            if error is not None:
                logger.warning("Retention purge failed: %r", error)
            elif counts and any(counts):
                logger.info(
                    "Retention purge: %d notes and %d finished updates deleted", *counts
                )

        self._storage.purge_expired(self._retention_days).add_done_callback(purged)

    def _snapshot(self) -> SupervisorSnapshot:
        depths = [
            mailbox_depth(child.ref)
            for child in self._children.values()
            if child.ref is not None
        ]
        try:
            answer = self._pool.ask(GetPoolStats(), timeout=1.0)
            pool: PoolStats | None = cast(PoolStats, answer)
        except (Timeout, ActorDeadError):
            pool = None
        busy = sum(
            c.state != "running" or c.idle_since is None
            for c in self._children.values()
        )
        return SupervisorSnapshot(
            live_chats=len(depths),
            busy_chats=busy,
            mailbox_max=max(depths, default=0),
            mailbox_total=sum(depths),
            restarts=self._restarts,
            quarantined=sum(c.state == "quarantined" for c in self._children.values()),
            pool=pool,
            stats=self._stats.snapshot(),
        )

    def _log_stats(self) -> None:
        snap = self._snapshot()
        pool = snap.pool or PoolStats(0, 0, 0)
        stats = snap.stats
        logger.info(
            "actor stats: chats=%d mailbox_max=%d mailbox_total=%d"
            " pool_in_flight=%d/%d pool_queued=%d notes_done=%d notes_failed=%d"
            " p50=%.2fs p95=%.2fs gemini_requests=%d gemini_retries=%d gemini_429=%d"
            " restarts=%d quarantined=%d",
            snap.live_chats,
            snap.mailbox_max,
            snap.mailbox_total,
            pool.in_flight,
            pool.limit,
            pool.queued,
            stats.notes_done,
            stats.notes_failed,
            stats.p50_seconds,
            stats.p95_seconds,
            stats.gemini_requests,
            stats.gemini_retries,
            stats.gemini_429,
            snap.restarts,
            snap.quarantined,
        )


def _tell_quietly(ref: ActorRef[Any], message: Any) -> None:
    try:
        ref.tell(message)
    except ActorDeadError:
        logger.debug("%s arrived after its actor stopped", type(message).__name__)


def _stop_quietly(ref: ActorRef[Any]) -> None:
    try:
        ref.stop(block=False)
    except ActorDeadError:
        logger.debug("%s had stopped already", ref)
