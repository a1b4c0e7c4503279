"""One bot instance at a time edits a card: a short Redis lock per analysis's card.

With several bot instances (webhooks), a card can be touched by the instance that handles a tap
and by the one whose notifier got the card's event. Each edit renders the gist read under this
lock, so edits of one card never overlap and are applied in the order of the states they show.
The lock expires by itself (CARD_LOCK_MS), so an instance that dies holding it delays the others
by at most that long.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator

import redis.asyncio as aioredis

from analysis.db.keys import Keys
from analysis.db.scripts.candles import RELEASE_LOCK

CARD_LOCK_MS = 10_000  # longer than an edit; an edit waiting out a long 429 may outlive it
POLL_S = 0.02


class CardLock:
    def __init__(self, client: aioredis.Redis, keys: Keys, *, ttl_ms: int = CARD_LOCK_MS):
        self.redis, self.keys, self.ttl_ms = client, keys, ttl_ms
        self._release = RELEASE_LOCK.bind(client)

    @contextlib.asynccontextmanager
    async def hold(self, analysis_id: str) -> AsyncIterator[None]:
        """Wait until this instance holds the card's lock; release it (if still ours) after."""
        key, token = self.keys.card_lock(analysis_id), secrets.token_hex(8)
        while not await self.redis.set(key, token, nx=True, px=self.ttl_ms):
            await asyncio.sleep(POLL_S)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):  # it expires by itself
                await self._release.call_async(lock=key, token=token)
