"""Where each analysis's status card lives: the chat and the message the bot edits in place.

One hash per analysis (`{prefix}card:{id}`, fields chat_id and message_id) with the gist's TTL,
so a card is remembered exactly as long as its analysis. Only the bot writes it. With several bot
instances the field `shown` (a digest of what the live card shows) tells one instance what another
put there, so no instance repeats an edit.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from analysis.db.keys import Keys


@dataclass(frozen=True)
class CardLocation:
    chat_id: int
    message_id: int


class CardStore:
    """`client` must be created with `decode_responses=True`."""

    def __init__(self, client: aioredis.Redis, keys: Keys, ttl_s: int):
        self.redis, self.keys, self.ttl_s = client, keys, ttl_s

    async def get(self, analysis_id: str) -> CardLocation | None:
        raw = await self.redis.hgetall(self.keys.card(analysis_id))
        try:
            return CardLocation(int(raw["chat_id"]), int(raw["message_id"]))
        except (KeyError, ValueError):
            return None

    async def save(self, analysis_id: str, location: CardLocation) -> None:
        key = self.keys.card(analysis_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"chat_id": location.chat_id, "message_id": location.message_id})
            pipe.expire(key, self.ttl_s)
            await pipe.execute()

    async def first_mark(self, analysis_id: str, flag: str) -> bool:
        """True the first time `flag` is set on the analysis's card record (once across bots):
        `finished:<refine generation>` (the notice that it ended was dealt with), `held` (its card was held
        for a digest)."""
        key = self.keys.card(analysis_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, flag, "1")
            pipe.expire(key, self.ttl_s)
            first, _ = await pipe.execute()
        return bool(first)

    async def shown(self, analysis_id: str) -> str | None:
        """The digest `mark_shown` last recorded for the live card."""
        value = await self.redis.hget(self.keys.card(analysis_id), "shown")
        return None if value is None else str(value)

    async def mark_shown(self, analysis_id: str, digest: str) -> None:
        key = self.keys.card(analysis_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, "shown", digest)
            pipe.expire(key, self.ttl_s)
            await pipe.execute()
