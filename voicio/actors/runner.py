"""Hand coroutines to the asyncio loop and their outcomes back to actors."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """How a coroutine ended: a value or an error."""

    value: T | None = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class AsyncRunner:
    """Run I/O coroutines for actors on one asyncio loop.

    Actors never wait for I/O: they start a coroutine here and get its outcome
    back as a message (the `done` callback runs on the loop thread and should
    only `tell` an actor).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def run(
        self,
        coro: Coroutine[Any, Any, T],
        done: Callable[[Outcome[T]], None] | None = None,
    ) -> concurrent.futures.Future[T] | None:
        """Start `coro` on the loop; call `done(outcome)` when it ends."""
        try:
            future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        except RuntimeError as exc:  # the loop is closed: we are shutting down
            coro.close()
            if done is not None:
                _call(done, Outcome(error=exc))
            return None
        if done is not None:
            future.add_done_callback(lambda f: _call(done, _outcome_of(f)))
        return future

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        """Call `callback()` on the loop thread after `delay` seconds."""
        try:
            self.loop.call_soon_threadsafe(
                self.loop.call_later, max(0.0, delay), _call, callback
            )
        except RuntimeError:
            logger.debug("Loop closed; timer dropped")


def _outcome_of(future: concurrent.futures.Future[T]) -> Outcome[T]:
    if future.cancelled():
        return Outcome(error=asyncio.CancelledError())
    error = future.exception()
    if error is not None:
        return Outcome(error=error)
    return Outcome(value=future.result())


def _call(callback: Callable[..., None], *args: Any) -> None:
    try:
        callback(*args)
    except Exception:
        # Typically an actor that stopped before its answer arrived.
        logger.debug("Dropped an outcome nobody could take", exc_info=True)
