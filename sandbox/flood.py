"""Telegram's flood control per chat: about one message or edit per second in a chat, with a
short burst allowed. A bot that goes faster is answered 429 with `retry_after`, as by Telegram.

A token bucket per chat: `burst` tokens, refilled at `per_second`; every sendMessage, sendPhoto
and edit in the chat takes one. Time is a parameter, so the rule is testable without sleeping.
"""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass
class FloodLimit:
    """How fast a bot may write into one chat."""

    per_second: float = 1.0
    burst: int = 3


class FloodControl:
    """Per-chat token buckets; `take(chat_id, now)` answers 0 (go) or the seconds to wait."""

    def __init__(self, limit: FloodLimit):
        self.limit = limit
        self._buckets: dict[int, tuple[float, float]] = {}  # chat_id -> (tokens, as of time)

    def take(self, chat_id: int, now: float) -> int:
        """Spend one token of `chat_id`'s bucket; 0 when there was one, else `retry_after` in
        whole seconds (at least 1), as Telegram gives it. A refused call spends nothing."""
        tokens, then = self._buckets.get(chat_id, (float(self.limit.burst), now))
        tokens = min(float(self.limit.burst), tokens + (now - then) * self.limit.per_second)
        if tokens >= 1:
            self._buckets[chat_id] = (tokens - 1, now)
            return 0
        self._buckets[chat_id] = (tokens, now)
        return max(1, math.ceil((1 - tokens) / self.limit.per_second))
