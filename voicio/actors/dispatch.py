"""Run many pykka actors on a few threads.

pykka's ThreadingActor gives every actor its own thread: 10,000 chats would be
10,000 threads. A DispatchedActor keeps pykka's model (refs, tell/ask,
proxies, on_start/on_stop/on_failure) but owns no thread: its mailbox asks a
shared Dispatcher to run it when a message arrives, and the dispatcher runs
at most `throughput` messages before giving the thread to the next actor.

An actor never runs on two threads at once: a mailbox is scheduled only when
it is not already scheduled, and it is rescheduled only by the thread that
just finished its turn.

This relies on pykka's three override points and on `Actor._handle_receive`,
`_handle_failure` and `_stop`; pyproject.toml pins pykka for that reason.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
from collections import deque
from typing import Any

import pykka
from pykka import ActorDeadError, ActorRegistry, messages
from pykka._envelope import Envelope

from voicio.actors.futures import CallbackFuture

logger = logging.getLogger(__name__)


class Dispatcher:
    """A fixed set of threads that take turns running ready actors."""

    def __init__(self, name: str, threads: int, throughput: int = 16) -> None:
        self.name = name
        self.throughput = throughput
        self._ready: queue.SimpleQueue[Mailbox | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def schedule(self, mailbox: Mailbox) -> None:
        """Queue an actor for its next turn."""
        self._ready.put(mailbox)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the threads once the actors queued before this call had a turn."""
        for _ in self._threads:
            self._ready.put(None)
        for thread in self._threads:
            thread.join(timeout)

    def _work(self) -> None:
        while (mailbox := self._ready.get()) is not None:
            mailbox.run_turn()


class Mailbox:
    """An actor's inbox that schedules the actor instead of waking a thread."""

    def __init__(self) -> None:
        self._envelopes: deque[Envelope[Any]] = deque()
        self._lock = threading.Lock()
        self._scheduled = False
        self._actor: DispatchedActor | None = None
        self._dispatcher: Dispatcher | None = None

    def __len__(self) -> int:
        return len(self._envelopes)

    def attach(self, actor: DispatchedActor, dispatcher: Dispatcher) -> None:
        """Bind the mailbox to its actor and give the actor its first turn."""
        with self._lock:
            self._actor = actor
            self._dispatcher = dispatcher
            self._scheduled = True
        dispatcher.schedule(self)

    def put(self, envelope: Envelope[Any], /) -> None:
        with self._lock:
            if self._actor is not None and self._actor.actor_stopped.is_set():
                # The actor stopped between the sender's liveness check and
                # now: answer at once rather than leave an ask hanging.
                _reject(envelope, self._actor)
                return
            self._envelopes.append(envelope)
            wake = self._dispatcher is not None and not self._scheduled
            self._scheduled = self._scheduled or wake
        if wake:
            assert self._dispatcher is not None
            self._dispatcher.schedule(self)

    def get(self) -> Envelope[Any]:
        with self._lock:
            return self._envelopes.popleft()

    def empty(self) -> bool:
        with self._lock:
            return not self._envelopes

    def take(self) -> Envelope[Any] | None:
        """Remove and return the oldest envelope, or None when empty."""
        with self._lock:
            return self._envelopes.popleft() if self._envelopes else None

    def run_turn(self) -> None:
        """Run the actor for one turn, then reschedule it if work remains."""
        actor, dispatcher = self._actor, self._dispatcher
        assert actor is not None
        assert dispatcher is not None
        actor.run_turn(dispatcher.throughput)
        with self._lock:
            again = bool(self._envelopes) and not actor.actor_stopped.is_set()
            self._scheduled = again
        if again:
            dispatcher.schedule(self)


def mailbox_depth(ref: pykka.ActorRef[Any]) -> int:
    """Return how many messages wait for an actor (0 if it has no Mailbox)."""
    inbox = ref.actor_inbox
    return len(inbox) if isinstance(inbox, Mailbox) else 0


class DispatchedActor(pykka.Actor):
    """A pykka actor that runs on a shared Dispatcher instead of its own thread.

    Subclasses pass the dispatcher to `__init__` (through `start(...)`).
    """

    actor_inbox: Mailbox

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher
        self._turns_started = False
        super().__init__()

    @staticmethod
    def _create_actor_inbox() -> Mailbox:
        return Mailbox()

    @staticmethod
    def _create_future() -> CallbackFuture[Any]:
        return CallbackFuture()

    def _start_actor_loop(self) -> None:
        self.actor_inbox.attach(self, self._dispatcher)

    def run_turn(self, throughput: int) -> None:
        """Handle up to `throughput` messages; called by the dispatcher only."""
        if not self._turns_started:
            self._turns_started = True
            self._run_on_start()
        for _ in range(throughput):
            if self.actor_stopped.is_set():
                break
            envelope = self.actor_inbox.take()
            if envelope is None:
                break
            self._handle_envelope(envelope)
        if self.actor_stopped.is_set():
            self._reject_remaining()

    def _run_on_start(self) -> None:
        try:
            self.on_start()
        except Exception:  # noqa: BLE001 - pykka's rule: a failed start stops the actor
            self._handle_failure(*sys.exc_info())

    def _handle_envelope(self, envelope: Envelope[Any]) -> None:
        try:
            response = self._handle_receive(envelope.message)
        except Exception:  # noqa: BLE001 - the actor boundary, as in pykka's own loop
            if envelope.reply_to is not None:
                # An ask: the caller gets the error and the actor lives on.
                envelope.reply_to.set_exception()
                return
            # A tell has nobody to answer to: the actor fails, as in pykka.
            self._handle_failure(*sys.exc_info())
            try:
                self.on_failure(*sys.exc_info())
            except Exception:  # noqa: BLE001 - a failing failure hook is logged
                self._handle_failure(*sys.exc_info())
        except BaseException:
            logger.exception("Fatal error in %s; stopping all actors", self)
            self._stop()
            ActorRegistry.stop_all(block=False)
            raise
        else:
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)

    def _reject_remaining(self) -> None:
        while (envelope := self.actor_inbox.take()) is not None:
            _reject(envelope, self)


def _reject(envelope: Envelope[Any], actor: pykka.Actor) -> None:
    """Answer an envelope that a stopped actor will never handle."""
    if envelope.reply_to is None:
        return
    if isinstance(envelope.message, messages._ActorStop):
        envelope.reply_to.set(None)
    else:
        error = ActorDeadError(f"{actor} stopped before handling the message")
        envelope.reply_to.set_exception((ActorDeadError, error, None))
