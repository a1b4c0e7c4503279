"""Candles in Redis: content-addressed blocks, and an analysis's data snapshot made of them.

A **block** holds the candles of one market whose open times fall in one aligned stretch of
`BLOCK_CANDLES` candles (block n of a timeframe of s seconds covers [n·B·s, (n+1)·B·s)), stored
once under the SHA-256 of its encoding (`{p}block:{sha256}`). Equal candles give an equal block,
so the live-data cache and every analysis that ranks the same candles share one copy; only the
newest, still-growing block of a market differs from hour to hour.

The **snapshot** INIT saves (`{p}candles:{id}`, symbol -> {"blocks": [...], "from": t}) names
the blocks and where the ranked window starts, so every later step, a resume after days and a
refine rank exactly the candles INIT read. Storage per analysis is that small hash (about 250
bytes a market) plus blocks no other analysis shares (at most the newest block of each market).
Blocks an analysis references live as long as its gist (GIST_TTL_S), refreshed whenever a step
reads them.
"""

import hashlib
import json
import zlib
from typing import cast

import numpy as np
import pandas as pd
import redis

from analysis.engine import lua
from analysis.engine.keys import Keys
from analysis.errors import DataUnavailable
from analysis.markets.base import OHLCV_COLUMNS

BLOCK_CANDLES = 256


def encode_candles(frame: pd.DataFrame) -> bytes:
    payload = {"t": frame.index.as_unit("s").asi8.tolist()}
    payload.update({col: frame[col].to_numpy().tolist() for col in OHLCV_COLUMNS})
    return zlib.compress(json.dumps(payload, separators=(",", ":")).encode(), level=1)


def decode_candles(blob: bytes) -> pd.DataFrame:
    payload = json.loads(zlib.decompress(blob))
    index = pd.DatetimeIndex(pd.to_datetime(np.asarray(payload["t"], dtype="int64"), unit="s", utc=True),
                             name="timestamp")
    return pd.DataFrame({col: np.asarray(payload[col], dtype=float) for col in OHLCV_COLUMNS},
                        index=index)


def block_numbers(frame: pd.DataFrame, step_s: int) -> np.ndarray:
    return frame.index.as_unit("s").asi8 // (step_s * BLOCK_CANDLES)


def from_block_start(frame: pd.DataFrame, step_s: int, first: pd.Timestamp) -> pd.DataFrame:
    """`frame` from the start of the block holding `first` on, so its blocks are whole ones."""
    start_block = (first.value // 10**9) // (step_s * BLOCK_CANDLES)
    return frame[block_numbers(frame, step_s) >= start_block]


class BlockStore:
    def __init__(self, client: redis.Redis, keys: Keys):
        self.redis, self.keys = client, keys
        self._store = lua.STORE_BLOCKS.bind(client)

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


def snapshot_refs(blocks: BlockStore, frame: pd.DataFrame, window: int, step_s: int,
                  ttl_s: int) -> str:
    """Store the last `window` candles of `frame` (with the rest of their first block, when
    `frame` has it) and answer the snapshot's entry for the market."""
    ranked = frame.iloc[-window:]
    digests = blocks.put(from_block_start(frame, step_s, ranked.index[0]), step_s, ttl_s)
    return json.dumps({"blocks": digests, "from": int(ranked.index[0].value // 10**9)},
                      separators=(",", ":"))


class CandleSnapshot:
    """Reads the snapshot; INIT writes it through `AnalysisStore.save_snapshot`, fenced by its
    lease, so a zombie INIT cannot replace it."""

    def __init__(self, client: redis.Redis, keys: Keys, ttl_s: int):
        self.redis, self.keys, self.ttl_s = client, keys, ttl_s
        self.blocks = BlockStore(client, keys)

    def load(self, analysis_id: str, symbols: list[str]) -> dict[str, pd.DataFrame]:
        refs = cast(list[bytes], self.redis.hmget(self.keys.candles(analysis_id), symbols))
        missing = [s for s, ref in zip(symbols, refs) if ref is None]
        if missing:
            raise DataUnavailable(f"the data snapshot lost {', '.join(missing[:5])}")
        frames = {}
        for symbol, ref in zip(symbols, refs):
            if not ref.startswith(b"{"):  # a snapshot saved before blocks: the candles themselves
                frames[symbol] = decode_candles(ref)
                continue
            entry = json.loads(ref)
            self.blocks.keep(entry["blocks"], self.ttl_s)
            frame = self.blocks.get(entry["blocks"])
            if frame is None:
                raise DataUnavailable(f"the data snapshot lost candles of {symbol}")
            frames[symbol] = frame[frame.index >= pd.Timestamp(entry["from"], unit="s", tz="UTC")]
        return frames
