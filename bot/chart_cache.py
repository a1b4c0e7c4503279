"""The Chart button's limits: one drawing per analysis state, and a few charts per user a minute.

- The PNG is kept in Redis by analysis id and sequence (`{p}chart:{id}:{seq}`, CHART_CACHE_TTL_S):
  a completed analysis only changes state when it is refined (a new seq), so every press until
  then sends the same picture without drawing it again.
- Each user may have CHART_PRESSES_PER_MINUTE charts sent in a minute (`{p}chartpresses:{user}`,
  a counter that expires with its minute); a press past that is answered politely and sends
  nothing. So the cache holds at most that many PNGs a minute per user, each for its TTL.

The client is the synchronous binary one (PNG bytes); callers run these in a thread.
"""

import logging
import time
from collections.abc import Callable

import redis

from analysis.db.keys import Keys
from analysis.models import Gist

logger = logging.getLogger(__name__)
WINDOW_S = 60
DRAW_LOCK_S = 30  # longer than any drawing; a press waits at most this long for another's
POLL_S = 0.05


class ChartCache:
    def __init__(self, client: redis.Redis, keys: Keys, *, ttl_s: int, presses_per_minute: int):
        self.redis, self.keys = client, keys
        self.ttl_s, self.presses_per_minute = ttl_s, presses_per_minute

    def wait_before_next(self, user_id: int) -> int:
        """Count a press of `user_id`: 0 if a chart may be sent, else the seconds until it may."""
        key = self.keys.chart_presses(str(user_id))
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(key, 0, ex=WINDOW_S, nx=True)  # the minute starts at its first press
            pipe.incr(key)
            pipe.ttl(key)
            _, presses, ttl = pipe.execute()
        if int(presses) <= self.presses_per_minute:
            return 0
        return max(int(ttl), 1)

    def png(self, gist: Gist, draw: Callable[[Gist], bytes]) -> bytes:
        """The chart of this state of the analysis, drawn by one press only: presses that come
        while it is being drawn wait for that drawing (if it fails, they draw themselves)."""
        key, drawing = self.keys.chart(gist.id, gist.seq), self.keys.chart_drawing(gist.id, gist.seq)
        deadline = time.monotonic() + DRAW_LOCK_S
        while True:
            cached = self.redis.get(key)
            if isinstance(cached, bytes):
                return cached
            if self.redis.set(drawing, 1, nx=True, px=int(DRAW_LOCK_S * 1000)) or time.monotonic() > deadline:
                break
            time.sleep(POLL_S)
        try:
            png = draw(gist)
            self.redis.set(key, png, ex=self.ttl_s)
        finally:
            self.redis.delete(drawing)
        logger.info("[%s seq=%d] drew the chart (%d bytes)", gist.id, gist.seq, len(png))
        return png
