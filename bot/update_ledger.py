"""Which Telegram updates a bot has taken, across restarts and across bot instances.

Telegram delivers an update again until the bot confirms it (a webhook's 200, the next
getUpdates offset); without this ledger a `/rank` could start a second analysis. One key per
update in the shared Redis (`{p}update:{bot}:{update_id}`, SET NX, one day): the first delivery
takes it and is handled, any later one is dropped, whichever instance gets it.

An update is taken just before its handlers run, never after: a tap replayed after the trader's
next tap would undo it (a pause replayed after the resume). The webhook's door confirms an
update only once its handlers are done, so an instance that dies before taking an update leaves
it to Telegram's redelivery; one that dies while handling it loses it (the trader sees no
answer and taps again; measured in docs/operations.md, "Several bot instances").
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

import redis.asyncio as aioredis
from telegram import Update
from telegram.ext import SimpleUpdateProcessor

from analysis.db.keys import Keys

logger = logging.getLogger(__name__)

LEDGER_TTL_S = 24 * 3600  # far past Telegram's redeliveries


class UpdateLedger:
    def __init__(self, client: aioredis.Redis, keys: Keys, bot_id: int):
        self.redis, self.keys, self.bot_id = client, keys, bot_id

    async def take(self, update_id: int) -> bool:
        """True the first time this update is taken, False on any later delivery."""
        key = self.keys.update(self.bot_id, update_id)
        return bool(await self.redis.set(key, 1, nx=True, ex=LEDGER_TTL_S))


class OnceUpdateProcessor(SimpleUpdateProcessor):
    """PTB's update processor (concurrent updates) with the ledger in front of each update: the
    same path for long polling and for the webhook's door, which awaits it before answering.
    A ledger that cannot be reached raises before any handler runs (the door answers 503 and
    Telegram retries; under polling the error handler tells the user)."""

    def __init__(self, max_concurrent_updates: int):
        super().__init__(max_concurrent_updates)
        self.ledger: UpdateLedger | None = None  # set when the services are built (post_init)

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        if self.ledger is not None and isinstance(update, Update):
            try:
                first = await self.ledger.take(update.update_id)
            except BaseException:
                coroutine.close()  # type: ignore[attr-defined]  # never awaited: no warning
                raise
            if not first:
                coroutine.close()  # type: ignore[attr-defined]
                logger.info("update %s was already handled; skipped", update.update_id)
                return
        await coroutine
