"""Which Telegram updates a bot has already handled.

After a hard kill, Telegram delivers again the updates the bot had not confirmed yet; without
this ledger a `/rank` could start a second analysis. One key per update (SET NX, one day).
"""

import redis.asyncio as aioredis

from analysis.db.keys import Keys

LEDGER_TTL_S = 24 * 3600


class UpdateLedger:
    def __init__(self, client: aioredis.Redis, keys: Keys, bot_id: int):
        self.redis, self.keys, self.bot_id = client, keys, bot_id

    async def first_delivery(self, update_id: int) -> bool:
        """True the first time this update is seen, False on any later delivery."""
        return bool(
            await self.redis.set(self.keys.update(self.bot_id, update_id), 1, nx=True, ex=LEDGER_TTL_S)
        )
