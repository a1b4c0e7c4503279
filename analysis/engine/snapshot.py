"""The data snapshot of an analysis: the candles INIT read, kept in Redis so that every later step
(also after a pause, a refine or a restart) ranks exactly the same data."""

import json
import zlib

import numpy as np
import pandas as pd
import redis

from analysis.engine.keys import Keys
from analysis.errors import DataUnavailable
from analysis.markets.base import OHLCV_COLUMNS


def encode_candles(frame: pd.DataFrame) -> bytes:
    payload = {"t": (frame.index.asi8 // 10**9).tolist()}
    payload.update({col: frame[col].to_numpy().tolist() for col in OHLCV_COLUMNS})
    return zlib.compress(json.dumps(payload, separators=(",", ":")).encode(), level=1)


def decode_candles(blob: bytes) -> pd.DataFrame:
    payload = json.loads(zlib.decompress(blob))
    index = pd.DatetimeIndex(pd.to_datetime(np.asarray(payload["t"]), unit="s", utc=True),
                             name="timestamp")
    return pd.DataFrame({col: payload[col] for col in OHLCV_COLUMNS}, index=index)


class CandleSnapshot:
    """Reads the snapshot; INIT writes it through `AnalysisStore.save_snapshot`, fenced by its
    lease, so a zombie INIT cannot replace it."""

    def __init__(self, client: redis.Redis, keys: Keys):
        self.redis, self.keys = client, keys

    def load(self, analysis_id: str, symbols: list[str]) -> dict[str, pd.DataFrame]:
        blobs = self.redis.hmget(self.keys.candles(analysis_id), symbols)
        missing = [s for s, blob in zip(symbols, blobs) if blob is None]
        if missing:
            raise DataUnavailable(f"the data snapshot lost {', '.join(missing[:5])}")
        return {symbol: decode_candles(blob) for symbol, blob in zip(symbols, blobs)}
