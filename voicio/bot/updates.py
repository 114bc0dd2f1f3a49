"""Persist-before-acknowledge: PTB's update queue, backed by the inbox table.

PTB's Updater puts each update of a batch into `update_queue` and then asks
Telegram for the next offset, which confirms the batch; the webhook server
answers 200 once `put()` returns. Voicio stores every update through the
StorageActor as it is put, and holds back what confirms it:

- polling: `wait_stored()` runs before each getUpdates call (see
  `GatedRequest`), so a batch is confirmed only after all of it is committed;
  the batch's inserts share one commit instead of paying one each;
- webhook: the handler awaits `wait_stored()` before answering 200.

An update stored before (a redelivery after a crash) is not handled again:
it is either finished or waiting in the inbox for its chat's replay. The
ChatActor makes that call, from the store's outcome handed along with the
update, in the update's order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from telegram import Update
from telegram.request import RequestData

from voicio.actors.futures import CallbackFuture, as_asyncio
from voicio.actors.stats import Stats
from voicio.actors.storage import StorageClient
from voicio.bot.transport import AiohttpRequest

logger = logging.getLogger(__name__)


class PersistingUpdateQueue(asyncio.Queue[object]):
    """An asyncio.Queue that stores each Update in the inbox as it is put."""

    def __init__(self, stats: Stats | None = None) -> None:
        super().__init__()
        self._stats = stats
        self._storage: StorageClient | None = None
        # Stores not yet known to be committed, and stores whose outcome the
        # edge has not yet handed to the actors.
        self._unconfirmed: dict[int, tuple[Update, CallbackFuture[bool]]] = {}
        self._outcomes: dict[int, CallbackFuture[bool]] = {}

    def attach(self, storage: StorageClient) -> None:
        """Start storing through `storage`; call before updates arrive."""
        self._storage = storage

    async def put(self, item: object) -> None:
        if isinstance(item, Update):
            if self._stats is not None:
                self._stats.update_received()
            stored = self._store(item)
            self._unconfirmed[item.update_id] = (item, stored)
            self._outcomes[item.update_id] = stored
        await super().put(item)

    def _store(self, update: Update) -> CallbackFuture[bool]:
        assert self._storage is not None, "attach() the storage before polling"
        chat = update.effective_chat
        payload: dict[str, Any] = update.to_dict()
        chat_id = chat.id if chat else None
        return self._storage.store_update(update.update_id, chat_id, payload)

    def take_outcome(self, update: Update) -> CallbackFuture[bool] | None:
        """Return the future telling whether `update` was new to the inbox.

        The actors wait for it (it is usually answered by then), so the event
        loop never does.
        """
        return self._outcomes.pop(update.update_id, None)

    async def wait_stored(self) -> None:
        """Return once every update put so far is committed to the database."""
        assert self._storage is not None
        waiting = list(self._unconfirmed.items())
        for update_id, (update, stored) in waiting:
            if not stored.done() or stored.outcome()[1] is not None:
                await self._until_done(
                    f"update {update_id}", stored, partial(self._store, update)
                )
        sync = self._storage.sync
        await self._until_done("the received updates", sync(), sync)
        # Only what this call saw committed; concurrent deliveries (webhook
        # mode) may have put more since, and their own call confirms those.
        for update_id, _ in waiting:
            self._unconfirmed.pop(update_id, None)

    async def _until_done(
        self,
        what: str,
        future: CallbackFuture[Any],
        again: Callable[[], CallbackFuture[Any]],
    ) -> Any:
        # Until it is stored, Telegram must not consider it delivered: keep
        # trying (polling pauses here while the database is away).
        delay = 0.5
        while True:
            try:
                return await as_asyncio(future)
            except Exception as exc:  # noqa: BLE001 - any failure means "not stored yet"
                logger.warning(
                    "Could not store %s (%r); retrying in %.1fs", what, exc, delay
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
            future = again()


class GatedRequest(AiohttpRequest):
    """The getUpdates transport: no call (which confirms the last batch)
    leaves before everything received so far is stored."""

    def __init__(self, gate: Callable[[], Awaitable[None]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._gate = gate

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> tuple[int, bytes]:
        await self._gate()
        return await super().do_request(url, method, request_data, *args, **kwargs)
