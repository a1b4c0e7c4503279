"""The live-data candle cache in Redis, shared by every worker, the bot and the CLI.

Per (source, timeframe, market), `{p}series:...` names the content-addressed blocks
(analysis/markets/candle_blocks.py) holding the cached closed candles and the newest closed
candle the source was asked for. A read within the same candle is a hit: no request. When a
candle has closed since, one process (the holder of `{p}serieslock:...`) fetches only the candles
after the cached ones and stores the series again (only the newest block changes); the others
wait for it and read its result. So a market and timeframe is fetched at most once per closed
candle, whoever asks.
"""

import json
import logging
import re
import time
import uuid
from collections.abc import Callable

import pandas as pd
import redis

from analysis.db.keys import Keys
from analysis.db.scripts.candles import RELEASE_LOCK
from analysis.markets.base import TIMEFRAMES
from analysis.markets.candle_blocks import BLOCK_CANDLES, BlockStore, from_block_start
from analysis.markets.candle_rows import empty_frame, fill_gaps

logger = logging.getLogger(__name__)

# fetch(symbol, timeframe, since_s, until_s) -> closed candles opening in [since_s, until_s]
Fetch = Callable[[str, str, int, int], pd.DataFrame]
MAX_CACHED = 5000 + BLOCK_CANDLES


def newest_closed_open(now: float, step_s: int) -> int:
    """Open time of the newest closed candle at `now` (the one that closed last)."""
    return (int(now) // step_s - 1) * step_s


class CandleCache:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        source: str,
        *,
        ttl_s: int,
        lock_s: float,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.redis, self.keys, self.source = client, keys, source
        self.ttl_s, self.lock_s = ttl_s, lock_s
        self.clock, self.sleep = clock, sleep
        self.blocks = BlockStore(client, keys)
        self._release = RELEASE_LOCK.bind(client)
        self.hits = self.fetches = 0

    def candles(self, symbol: str, timeframe: str, limit: int, fetch: Fetch) -> pd.DataFrame:
        """The last `limit` closed candles, from the cache or, once per closed candle, the source."""
        step = TIMEFRAMES[timeframe]
        newest = newest_closed_open(self.clock(), step)
        frame = self._hit(symbol, timeframe, limit, newest)
        if frame is None:
            frame = self._fetch_once(symbol, timeframe, limit, newest, fetch)
        else:
            self._counted("candle_cache_hits")
        return frame.iloc[-limit:]

    def stored(self, symbol: str, timeframe: str) -> pd.DataFrame:
        """Every candle the cache holds for the series, never asking the source (empty when
        none is cached or its blocks have expired). What a backtest replays."""
        head = self._head(symbol, timeframe)
        frame = self.blocks.get(head["blocks"]) if head and head["blocks"] else None
        return empty_frame() if frame is None else frame

    def stored_markets(self, timeframe: str) -> list[str]:
        """The markets with a cached series of `timeframe`, sorted (a SCAN: never the source)."""
        prefix = self.keys.series(self.source, timeframe, "")
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*"
        keys = (
            k.decode() if isinstance(k, bytes) else k for k in self.redis.scan_iter(match=pattern, count=500)
        )
        return sorted({key[len(prefix) :] for key in keys})

    def _counted(self, what: str) -> None:
        """This process's count, and the Prometheus counter every process shares."""
        if what == "candle_fetches":
            self.fetches += 1
        else:
            self.hits += 1
        self.redis.hincrby(self.keys.metrics(), what, 1)

    def _head(self, symbol: str, timeframe: str) -> dict | None:
        raw = self.redis.get(self.keys.series(self.source, timeframe, symbol))
        return json.loads(raw) if raw else None

    def _hit(self, symbol: str, timeframe: str, limit: int, newest: int) -> pd.DataFrame | None:
        head = self._head(symbol, timeframe)
        if not head or head["checked"] < newest or (head["count"] < limit and not head["complete"]):
            return None
        if not head["blocks"]:
            return empty_frame()
        return self.blocks.get(head["blocks"])

    def _fetch_once(self, symbol: str, timeframe: str, limit: int, newest: int, fetch: Fetch) -> pd.DataFrame:
        lock, token = self.keys.series_lock(self.source, timeframe, symbol), uuid.uuid4().hex
        deadline = time.monotonic() + self.lock_s
        while not self.redis.set(lock, token, nx=True, px=int(self.lock_s * 1000)):
            self.sleep(0.05)  # another process fetches this series: read its result
            frame = self._hit(symbol, timeframe, limit, newest)
            if frame is not None:
                self._counted("candle_cache_hits")
                return frame
            if time.monotonic() > deadline:
                break  # it died or stalls: fetch ourselves
        try:
            frame = self._hit(symbol, timeframe, limit, newest)
            if frame is not None:
                self._counted("candle_cache_hits")
                return frame
            self._counted("candle_fetches")
            return self._refresh(symbol, timeframe, limit, newest, fetch)
        finally:
            self._release(lock=lock, token=token)

    def _refresh(self, symbol: str, timeframe: str, limit: int, newest: int, fetch: Fetch) -> pd.DataFrame:
        step = TIMEFRAMES[timeframe]
        head = self._head(symbol, timeframe)
        old = self.blocks.get(head["blocks"]) if head and head["blocks"] else None
        if old is not None and head is not None and (head["count"] >= limit or head["complete"]):
            new = fetch(symbol, timeframe, int(old.index[-1].value // 10**9) + step, newest)
            frame = pd.concat([old, new]) if len(new) else old
            frame = frame[~frame.index.duplicated(keep="last")]
            complete = head["complete"]
        else:
            since = newest - (limit - 1) * step
            frame = fetch(symbol, timeframe, since, newest)
            complete = frame.empty or int(frame.index[0].value // 10**9) > since
        frame = fill_gaps(frame, step, newest)
        keep = max(limit, head["count"] if head else 0)
        if len(frame) > min(keep, MAX_CACHED):
            frame = from_block_start(frame, step, frame.index[-min(keep, MAX_CACHED)])
            complete = False
        digests = self.blocks.put(frame, step, self.ttl_s)
        head = {"blocks": digests, "checked": newest, "complete": complete, "count": len(frame)}
        self.redis.set(
            self.keys.series(self.source, timeframe, symbol),
            json.dumps(head, separators=(",", ":")),
            ex=self.ttl_s,
        )
        logger.info(
            "candles %s %s %s: cached %d to %s",
            self.source,
            symbol,
            timeframe,
            len(frame),
            pd.Timestamp(newest, unit="s", tz="UTC").isoformat(),
        )
        return frame
