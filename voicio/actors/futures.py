"""pykka futures that can tell someone when they are done.

pykka's futures can only be waited on. Actors on a shared dispatcher must not
wait, and the asyncio edge must not block its loop, so every Voicio actor
answers asks with a CallbackFuture: the result can be turned into a message
to an actor, or awaited from asyncio.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

from pykka import ThreadingFuture
from pykka._types import OptExcInfo

logger = logging.getLogger(__name__)

T = TypeVar("T")


class CallbackFuture(ThreadingFuture[T], Generic[T]):
    """A ThreadingFuture that runs callbacks once its result is set."""

    def __init__(self) -> None:
        super().__init__()
        self._callbacks: list[Callable[[CallbackFuture[T]], None]] = []

    def add_done_callback(self, callback: Callable[[CallbackFuture[T]], None]) -> None:
        """Call `callback(self)` when done; at once if it already is.

        Callbacks run in the thread that sets the result, so they should only
        hand the result on (for example tell an actor), never do work.
        """
        with self._condition:
            if self._result is None:
                self._callbacks.append(callback)
                return
        callback(self)

    def set(self, value: Any | None = None) -> None:
        super().set(value)
        self._run_callbacks()

    def set_exception(self, exc_info: OptExcInfo | None = None) -> None:
        super().set_exception(exc_info)
        self._run_callbacks()

    def done(self) -> bool:
        """Return whether the result (or an error) is set."""
        with self._condition:
            return self._result is not None

    def outcome(self) -> tuple[T | None, BaseException | None]:
        """Return (value, None) or (None, error) of a finished future."""
        try:
            return self.get(timeout=0), None
        except Exception as exc:  # noqa: BLE001 - handing the error on is the point
            return None, exc

    def _run_callbacks(self) -> None:
        with self._condition:
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:
                logger.exception("A future's done-callback failed")


def as_asyncio(future: CallbackFuture[T]) -> asyncio.Future[T]:
    """Wrap a CallbackFuture so the running asyncio loop can await it."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[T] = loop.create_future()

    def transfer(done: CallbackFuture[T]) -> None:
        value, error = done.outcome()
        if waiter.done():
            return
        if error is not None:
            waiter.set_exception(error)
        else:
            waiter.set_result(cast(T, value))

    def hand_over(done: CallbackFuture[T]) -> None:
        loop.call_soon_threadsafe(transfer, done)

    future.add_done_callback(hand_over)
    return waiter
