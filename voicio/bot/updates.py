"""Persist-before-acknowledge: PTB's update queue, backed by the inbox table.

PTB's Updater awaits `update_queue.put()` for each update of a batch before
it asks Telegram for the next offset (which confirms the batch), and the
webhook server awaits it before answering 200. Storing the update inside
`put()` therefore means Telegram never forgets an update Voicio has not
stored. An update stored before (a redelivery after a crash) is dropped
here: it is either finished or waiting in the inbox for its chat's replay.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pykka import ActorDeadError
from telegram import Update

from voicio.actors.futures import as_asyncio
from voicio.actors.storage import StorageClient

logger = logging.getLogger(__name__)


class PersistingUpdateQueue(asyncio.Queue[object]):
    """An asyncio.Queue whose put() first stores Updates durably."""

    def __init__(self) -> None:
        super().__init__()
        self._storage: StorageClient | None = None

    def attach(self, storage: StorageClient) -> None:
        """Start storing through `storage`; call before polling starts."""
        self._storage = storage

    async def put(self, item: object) -> None:
        if isinstance(item, Update) and not await self._store(item):
            logger.info(
                "Update %s was stored before; not handled again", item.update_id
            )
            return
        await super().put(item)

    async def _store(self, update: Update) -> bool:
        assert self._storage is not None, "attach() the storage before polling"
        chat = update.effective_chat
        payload: dict[str, Any] = update.to_dict()
        delay = 0.5
        while True:
            try:
                return await as_asyncio(
                    self._storage.store_update(
                        update.update_id, chat.id if chat else None, payload
                    )
                )
            except ActorDeadError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure means "not stored yet"
                # Not stored means not acknowledged: Telegram keeps the update
                # while we wait, and polling pauses here.
                logger.warning(
                    "Could not store update %s (%r); retrying in %.1fs",
                    update.update_id,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
