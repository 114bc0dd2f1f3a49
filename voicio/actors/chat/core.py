"""The ChatActor's core: life cycle, update order, continuations, sending."""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo

from pykka import ActorDeadError, ActorRef

from voicio import render
from voicio.actors.delivery import MaybeDelivered, deliver, replace_message
from voicio.actors.dispatch import DispatchedActor, Dispatcher
from voicio.actors.futures import CallbackFuture
from voicio.actors.gemini_pool import Job, JobDone
from voicio.actors.messages import (
    ChildFailed,
    ChildIdle,
    Deliver,
    Passivate,
    Passivated,
    PassivateDeclined,
    Reload,
)
from voicio.actors.ports import ChatMoved, ChatUnreachable, Keyboard, TelegramPort
from voicio.actors.runner import AsyncRunner, Outcome
from voicio.actors.stats import Stats
from voicio.actors.storage import ChatState, StorageClient
from voicio.audio.prepare import AudioPreparer
from voicio.domain import ChatSettings, Inbound
from voicio.i18n import Translator, pick_language, translator
from voicio.storage.repository import PendingUpdate

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class BotInfo:
    """What getMe said about the bot."""

    id: int
    username: str
    can_read_all_group_messages: bool


@dataclass(frozen=True)
class ChatDeps:
    """Everything a ChatActor uses, shared by all of them."""

    dispatcher: Dispatcher
    storage: StorageClient
    pool: ActorRef[Any]
    port: TelegramPort
    runner: AsyncRunner
    stats: Stats
    parse_update: Callable[[dict[str, Any]], Inbound | None]
    bot: BotInfo
    audio: AudioPreparer
    # A note still unanswered after this long gets a 👀 reaction, so the user
    # knows it arrived; a faster answer is its own acknowledgement.
    ack_delay: float = 0.5
    # An update replayed this many times (each time its actor crashed) is
    # given up with a message to the user instead of crashing it again.
    max_update_attempts: int = 5
    retention_days: int = 90
    # Notes longer than this are split, transcribed piecewise and merged.
    long_audio_seconds: float = 900.0
    # Other instances may store this chat's updates (webhook mode): check the
    # inbox before taking in a delivered one, so order holds across them.
    shared_inbox: bool = False


@dataclass(frozen=True)
class _Resumed:
    """A continuation's awaited outcome has arrived."""

    token: int
    outcome: Outcome[Any]


@dataclass(frozen=True)
class Tick:
    """A timer the actor set for itself."""

    what: str
    key: int


class ChatCore(DispatchedActor):
    """Life cycle, update ordering, continuations and sending."""

    def __init__(self, chat_id: int, supervisor: ActorRef[Any], deps: ChatDeps) -> None:
        super().__init__(deps.dispatcher)
        # The supervisor knows this actor by the id it was started for.
        self._key = chat_id
        # The chat's data and its replies: both move if the group migrates.
        self.chat_id = chat_id
        # Where replies go: changes if the group becomes a supergroup.
        self.target_id = chat_id
        self._supervisor = supervisor
        self._deps = deps
        self._settings: ChatSettings | None = None
        # Delivered updates, each with the future that says whether the inbox
        # saw it for the first time; taken strictly in order.
        self._arrivals: deque[tuple[Inbound, CallbackFuture[bool] | None]] = deque()
        self._awaiting_arrival = False
        self._pending_at_load: set[int] = set()
        # Updates taken in by this actor (each exactly once), and how far the
        # inbox has been checked for updates other instances stored.
        self._accepted: set[int] = set()
        self._checked_up_to = 0
        self._checking_inbox = False
        self._waiting: dict[int, Callable[[Outcome[Any]], None]] = {}
        self._tokens = itertools.count(1)
        self._reported_idle = False
        self._unreachable = False

    @property
    def settings(self) -> ChatSettings:
        return self._settings or ChatSettings()

    # -- life cycle --------------------------------------------------------------

    def on_start(self) -> None:
        logger.debug("ChatActor for chat %s started", self.chat_id)
        self._await(self._deps.storage.load_chat_state(self.chat_id), self._on_loaded)

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._supervisor.tell(
            ChildFailed(self._key, self.actor_urn, repr(exception_value))
        )

    def on_receive(self, message: Any) -> Any:
        match message:
            case Deliver(event=event, stored=stored):
                self._arrivals.append((event, stored))
                self._take_arrivals()
            case _Resumed(token=token, outcome=outcome):
                self._waiting.pop(token)(outcome)
            case JobDone(job=job):
                self._waiting.pop(job.tag)(Outcome(message))
            case Tick():
                self._on_tick(message)
            case Reload():
                self._reload()
            case Passivate():
                self._on_passivate()
                return None
            case _:
                return super().on_receive(message)
        self._report_idle()
        return None

    @property
    def busy(self) -> bool:
        return bool(self._settings is None or self._arrivals or self._waiting) or (
            self._has_work()
        )

    def _has_work(self) -> bool:
        """Whether a part of the actor has work under way (parts extend this)."""
        return False

    def _report_idle(self) -> None:
        if self.busy:
            self._reported_idle = False
        elif not self._reported_idle:
            self._reported_idle = True
            self._supervisor.tell(ChildIdle(self._key))

    def _on_passivate(self) -> None:
        if self.busy:
            self._supervisor.tell(PassivateDeclined(self._key))
            return
        self._supervisor.tell(Passivated(self._key))
        self.stop()

    # -- continuations -------------------------------------------------------------

    def _await(
        self, future: CallbackFuture[T], then: Callable[[Outcome[T]], None]
    ) -> None:
        """Continue with `then(outcome)` once `future` is done, as a message."""
        token = self._park(then)
        future.add_done_callback(
            lambda done: self._resume(token, Outcome(*done.outcome()))
        )

    def _io(
        self, coro: Coroutine[Any, Any, T], then: Callable[[Outcome[T]], None]
    ) -> None:
        """Run `coro` on the I/O loop and continue with `then(outcome)`."""
        token = self._park(then)
        self._deps.runner.run(coro, lambda outcome: self._resume(token, outcome))

    def _submit(
        self,
        make_job: Callable[[int], Job],
        then: Callable[[JobDone], None],
    ) -> None:
        """Queue a model job; continue with `then(job_done)`."""
        token = self._park(lambda outcome: then(cast(JobDone, outcome.value)))
        self._deps.pool.tell(make_job(token))

    def _after(self, delay: float, tick: Tick) -> None:
        """Receive `tick` after `delay` seconds (dropped if the actor stopped)."""
        me = self.actor_ref

        def fire() -> None:
            try:
                me.tell(tick)
            except ActorDeadError:
                logger.debug("Chat %s stopped before its %s timer", self.chat_id, tick)

        self._deps.runner.call_later(delay, fire)

    def _on_tick(self, tick: Tick) -> None:
        """Handle a timer (parts override this)."""

    def _park(self, then: Callable[[Outcome[Any]], None]) -> int:
        token = next(self._tokens)
        self._waiting[token] = then
        return token

    def _resume(self, token: int, outcome: Outcome[Any]) -> None:
        try:
            self.actor_ref.tell(_Resumed(token, outcome))
        except ActorDeadError:
            logger.debug("Chat %s stopped before an answer arrived", self.chat_id)

    # -- arrival and ordering ----------------------------------------------------

    def _on_loaded(self, outcome: Outcome[ChatState]) -> None:
        if outcome.error is not None:
            # Without settings nothing can be decided; crash so the supervisor
            # restarts this actor with backoff (the updates stay in the inbox).
            raise RuntimeError(f"cannot load chat {self.chat_id}") from outcome.error
        state = outcome.value
        assert state is not None
        self._settings = state.settings or ChatSettings()
        self._pending_at_load = {pending.update_id for pending in state.pending}
        for pending in state.pending:
            if pending.attempts > self._deps.max_update_attempts:
                self._abandon(pending.update_id, pending.payload, pending.attempts)
        # Updates being delivered are in the inbox too; parse only the others
        # (reading a stored update back costs more than all the rest).
        arriving = {event.update_id for event, _ in self._arrivals}
        replayed = [
            event
            for pending in state.pending
            if pending.update_id not in arriving
            and pending.attempts <= self._deps.max_update_attempts
            and (event := self._deps.parse_update(pending.payload))
        ]
        if replayed:
            logger.info(
                "Chat %s: resuming %d unfinished updates", self.chat_id, len(replayed)
            )
        for event in sorted(replayed, key=lambda e: e.update_id):
            self._accept(event)
        self._take_arrivals()

    def _reload(self) -> None:
        """Take in updates another instance stored for this chat."""
        if self._settings is None:
            return  # still loading: the load brings them

        def loaded(outcome: Outcome[list[PendingUpdate]]) -> None:
            self._merge_pending(outcome.value or [], below=None)
            self._take_arrivals()

        self._await(self._deps.storage.pending_updates(self.chat_id), loaded)

    def _merge_pending(self, pending: list[PendingUpdate], below: int | None) -> None:
        """Queue stored updates this actor has not taken in, in update order."""
        known = self._accepted | {event.update_id for event, _ in self._arrivals}
        fresh = [
            (event, None)
            for item in pending
            if item.update_id not in known
            and (below is None or item.update_id < below)
            and (event := self._deps.parse_update(item.payload))
        ]
        if fresh:
            merged = sorted([*self._arrivals, *fresh], key=lambda a: a[0].update_id)
            self._arrivals = deque(merged)

    def _abandon(self, update_id: int, payload: dict[str, Any], attempts: int) -> None:
        """Give up on an update that keeps crashing its actor."""
        logger.error(
            "Chat %s: update %s failed %d times; giving up on it",
            self.chat_id,
            update_id,
            attempts - 1,
        )
        self._deps.stats.note_failed("abandoned")
        self._finish(update_id, "abandoned")
        event = self._deps.parse_update(payload)
        message_id = getattr(event, "message_id", None)
        t = self._translator(event)
        rendered = render.Rendered([render.text(t("error.abandoned")).html])
        self._send(None, rendered, reply_to=message_id)

    def _take_arrivals(self) -> None:
        """Accept delivered updates in order, each once its store is answered."""
        while self._settings is not None and self._arrivals:
            if self._awaiting_arrival or self._checking_inbox:
                return
            event, stored = self._arrivals[0]
            if stored is not None and not stored.done():
                self._awaiting_arrival = True
                self._await(stored, self._on_arrival_stored)
                return
            if stored is not None and self._must_check_inbox(event):
                self._check_inbox(event.update_id)
                return
            self._arrivals.popleft()
            if stored is None or self._is_fresh(event, stored):
                self._accept(event)

    def _must_check_inbox(self, event: Inbound) -> bool:
        # With several instances, an earlier update of this chat may have
        # reached another one and be waiting in the inbox: take it in first.
        return self._deps.shared_inbox and event.update_id > self._checked_up_to

    def _check_inbox(self, below: int) -> None:
        self._checking_inbox = True

        def loaded(outcome: Outcome[list[PendingUpdate]]) -> None:
            self._checking_inbox = False
            self._checked_up_to = below
            self._merge_pending(outcome.value or [], below=below)
            self._take_arrivals()

        self._await(self._deps.storage.pending_updates(self.chat_id), loaded)

    def _on_arrival_stored(self, _: Outcome[bool]) -> None:
        self._awaiting_arrival = False
        self._take_arrivals()

    def _is_fresh(self, event: Inbound, stored: CallbackFuture[bool]) -> bool:
        new, error = stored.outcome()
        if error is not None or new:
            # An error: the edge keeps retrying the store; the work goes on.
            return True
        if event.update_id in self._pending_at_load:
            return True  # stored before a restart and never finished
        logger.info(
            "Chat %s: update %s was handled before; not again",
            self.chat_id,
            event.update_id,
        )
        return False

    def _accept(self, event: Inbound) -> None:
        if event.update_id in self._accepted:
            return  # a replay of something already under way
        self._accepted.add(event.update_id)
        if self._unreachable and not self._speaks_again(event):
            self._finish(event.update_id, "unreachable")
            return
        self._deps.storage.save_chat(event.chat, event.sender)
        self._handle(event)

    def _speaks_again(self, event: Inbound) -> bool:
        """A new message means the user unblocked the bot: try again."""
        if getattr(event, "message_id", None) is None:
            return False
        logger.info("Chat %s wrote again; it is reachable", self.chat_id)
        self._unreachable = False
        self._deps.storage.set_unreachable(self.chat_id, False)
        return True

    def _handle(self, event: Inbound) -> None:
        """Act on one update (the conversation part implements this)."""
        raise NotImplementedError

    def _finish(self, update_id: int | None, outcome: str) -> None:
        if update_id is not None:
            self._deps.storage.finish_update(update_id, outcome)

    # -- words and time ------------------------------------------------------------

    def _translator(self, event: Inbound | None = None) -> Translator:
        spoken = event.sender.language_code if event and event.sender else None
        return translator(pick_language(self.settings.language, spoken))

    def _zone(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.settings.timezone)
        except (ValueError, KeyError):
            return ZoneInfo("UTC")

    # -- sending ---------------------------------------------------------------------

    def _send(
        self,
        update_id: int | None,
        rendered: render.Rendered,
        *,
        reply_to: int | None = None,
        buttons: Keyboard | None = None,
        then: Callable[[list[int]], None] | None = None,
    ) -> None:
        """Send a reply; close `update_id` once it is out (or given up)."""

        def start() -> Coroutine[Any, Any, list[int]]:
            return deliver(
                self._deps.port,
                self.target_id,
                rendered,
                reply_to=reply_to,
                buttons=buttons,
            )

        self._transmit(start, self._settler(update_id, then))

    def _replace(
        self,
        update_id: int | None,
        message_id: int,
        rendered: render.Rendered,
        buttons: Keyboard | None,
        then: Callable[[list[int]], None] | None = None,
    ) -> None:
        """Edit a bot message to show `rendered` (sent anew if it is gone)."""

        def start() -> Coroutine[Any, Any, list[int]]:
            return replace_message(
                self._deps.port, self.target_id, message_id, rendered, buttons
            )

        self._transmit(start, self._settler(update_id, then))

    def _settler(
        self, update_id: int | None, then: Callable[[list[int]], None] | None
    ) -> Callable[[list[int], str], None]:
        """Close the update once a reply settles; `then` only if it went out."""

        def settle(ids: list[int], outcome: str) -> None:
            if then is not None and outcome in ("done", "maybe_delivered"):
                then(ids)
            self._finish(update_id, outcome)

        return settle

    def _transmit(
        self,
        start: Callable[[], Coroutine[Any, Any, list[int]]],
        settle: Callable[[list[int], str], None],
        *,
        moved: bool = False,
    ) -> None:
        """Run a send; `settle(message_ids, outcome)` is called exactly once."""

        def done(outcome: Outcome[list[int]]) -> None:
            error = outcome.error
            if error is None:
                settle(outcome.value or [], "done")
            elif isinstance(error, ChatMoved) and not moved:
                self._move_to(error.new_chat_id)
                self._transmit(start, settle, moved=True)
            else:
                settle([], self._delivery_failed(error))

        self._io(start(), done)

    def _delivery_failed(self, error: BaseException) -> str:
        """Log a failed send and name its outcome."""
        if isinstance(error, ChatUnreachable):
            self._become_unreachable(error)
            return "unreachable"
        if isinstance(error, MaybeDelivered):
            # Telegram may have posted it; a retry could post it twice.
            logger.warning("Chat %s: %s; not sent again", self.chat_id, error)
            return "maybe_delivered"
        logger.error("Chat %s: a reply could not be delivered: %r", self.chat_id, error)
        return "undeliverable"

    def _move_to(self, new_chat_id: int) -> None:
        """Follow a group that became a supergroup."""
        if self.target_id == new_chat_id:
            return
        logger.info(
            "Chat %s became chat %s; moving its data", self.chat_id, new_chat_id
        )
        self._deps.storage.migrate_chat(self.chat_id, new_chat_id)
        self.chat_id = self.target_id = new_chat_id

    def _become_unreachable(self, error: BaseException) -> None:
        """Stop working for a chat that blocked or removed the bot."""
        if not self._unreachable:
            logger.warning("Chat %s is unreachable (%s)", self.chat_id, error)
            self._deps.storage.set_unreachable(self.chat_id, True)
        self._unreachable = True
        self._drop_queued_work()

    def _drop_queued_work(self) -> None:
        """Drop work nobody can receive (the notes part implements this)."""

    def _log_failure(self, what: str, outcome: Outcome[Any]) -> None:
        if outcome.error is not None:
            logger.warning("Chat %s: %s failed: %r", self.chat_id, what, outcome.error)
