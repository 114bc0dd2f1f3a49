"""The base for Voicio's long-lived actors that keep a thread of their own."""

from __future__ import annotations

from typing import Any

import pykka

from voicio.actors.futures import CallbackFuture


class ThreadedActor(pykka.ThreadingActor):
    """A ThreadingActor whose asks answer with CallbackFutures.

    For the few singletons (Supervisor, StorageActor, GeminiPool) that may
    block: one thread each is cheap, and they must not hold up the chat
    dispatcher.
    """

    @staticmethod
    def _create_future() -> CallbackFuture[Any]:
        return CallbackFuture()
