"""Candles in Redis as content-addressed blocks, shared by the live data's cache and every
analysis's snapshot (analysis/engine/snapshot.py).

A **block** holds the candles of one market whose open times fall in one aligned stretch of
`BLOCK_CANDLES` candles (block n of a timeframe of s seconds covers [n·B·s, (n+1)·B·s)), stored
once under the SHA-256 of its encoding (`{p}block:{sha256}`). Equal candles give an equal block,
so the live-data cache and every analysis that ranks the same candles share one copy; only the
newest, still-growing block of a market differs from hour to hour.
"""

import hashlib
import json
import zlib
from typing import cast

import numpy as np
import pandas as pd
import redis

from analysis.db.keys import Keys
from analysis.db.scripts.candles import STORE_BLOCKS
from analysis.markets.base import OHLCV_COLUMNS

BLOCK_CANDLES = 256


def encode_candles(frame: pd.DataFrame) -> bytes:
    payload = {"t": frame.index.as_unit("s").asi8.tolist()}
    payload.update({col: frame[col].to_numpy().tolist() for col in OHLCV_COLUMNS})
    return zlib.compress(json.dumps(payload, separators=(",", ":")).encode(), level=1)


def decode_candles(blob: bytes) -> pd.DataFrame:
    payload = json.loads(zlib.decompress(blob))
    index = pd.DatetimeIndex(
        pd.to_datetime(np.asarray(payload["t"], dtype="int64"), unit="s", utc=True), name="timestamp"
    )
    return pd.DataFrame({col: np.asarray(payload[col], dtype=float) for col in OHLCV_COLUMNS}, index=index)


def block_numbers(frame: pd.DataFrame, step_s: int) -> np.ndarray:
    return frame.index.as_unit("s").asi8 // (step_s * BLOCK_CANDLES)


def from_block_start(frame: pd.DataFrame, step_s: int, first: pd.Timestamp) -> pd.DataFrame:
    """`frame` from the start of the block holding `first` on, so its blocks are whole ones."""
    start_block = (first.value // 10**9) // (step_s * BLOCK_CANDLES)
    return frame[block_numbers(frame, step_s) >= start_block]


class BlockStore:
    def __init__(self, client: redis.Redis, keys: Keys):
        self.redis, self.keys = client, keys
        self._store = STORE_BLOCKS.bind(client)

    def put(self, frame: pd.DataFrame, step_s: int, ttl_s: int) -> list[str]:
        """Store `frame` as aligned blocks living at least `ttl_s`; their digests, oldest first."""
        numbers = block_numbers(frame, step_s)
        blobs = [encode_candles(frame[numbers == n]) for n in np.unique(numbers)]
        digests = [hashlib.sha256(blob).hexdigest() for blob in blobs]
        if digests:
            self._store(blocks=[self.keys.block(d) for d in digests], ttl_s=ttl_s, contents=blobs)
        return digests

    def keep(self, digests: list[str], ttl_s: int) -> int:
        """Make the blocks live at least `ttl_s` more; how many are gone."""
        if not digests:
            return 0
        answer = self._store(blocks=[self.keys.block(d) for d in digests], ttl_s=ttl_s, contents=[])
        return int(answer.values[0])

    def get(self, digests: list[str]) -> pd.DataFrame | None:
        """The candles of the blocks, oldest first; None if any block is gone."""
        if not digests:
            return None
        blobs = cast(list[bytes | None], self.redis.mget([self.keys.block(d) for d in digests]))
        if any(blob is None for blob in blobs):
            return None
        return pd.concat([decode_candles(blob) for blob in blobs if blob is not None])
