"""A token bucket in Redis shared by every process that calls one exchange (TAKE_TOKENS in
analysis/db/scripts/candles.py).

ccxt's own limiter (`enableRateLimit`) spaces the requests of one process; this keeps all of
them together within the same rate, so ten workers do not send ten times the exchange's limit.
"""

import time
from collections.abc import Callable

import redis

from analysis.db.scripts.candles import TAKE_TOKENS


class TokenBucket:
    def __init__(
        self,
        client: redis.Redis,
        key: str,
        *,
        rate_per_s: float,
        capacity: float,
        sleep: Callable[[float], None] = time.sleep,
        clock_ms: Callable[[], int] | None = None,
    ):
        """`clock_ms` None: Redis's clock (production); tests pass their own time."""
        self.key, self.rate_per_s, self.capacity, self.sleep = key, rate_per_s, capacity, sleep
        self.clock_ms = clock_ms
        self._take = TAKE_TOKENS.bind(client)
        self.waited_s = 0.0

    def take(self, cost: float = 1.0) -> float:
        """Reserve `cost` tokens and sleep until they are due; the seconds slept."""
        now = "" if self.clock_ms is None else self.clock_ms()
        answer = self._take(
            bucket=self.key, rate=self.rate_per_s, capacity=self.capacity, cost=cost, now_ms=now
        )
        wait_s = int(answer.values[0]) / 1000
        if wait_s > 0:
            self.sleep(wait_s)
            self.waited_s += wait_s
        return wait_s
