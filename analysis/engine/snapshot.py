"""An analysis's data snapshot: the candle blocks (analysis/markets/candle_blocks.py) INIT read.

The **snapshot** INIT saves (`{p}candles:{id}`, symbol -> {"blocks": [...], "from": t}) names
the blocks and where the ranked window starts, so every later step, a resume after days and a
refine rank exactly the candles INIT read. Storage per analysis is that small hash (about 250
bytes a market) plus blocks no other analysis shares (at most the newest block of each market).
Blocks an analysis references live as long as its gist (GIST_TTL_S), refreshed whenever a step
reads them.
"""

import json
from typing import cast

import pandas as pd
import redis

from analysis.db.keys import Keys
from analysis.errors import DataUnavailable
from analysis.markets.candle_blocks import BlockStore, decode_candles, from_block_start


def snapshot_refs(blocks: BlockStore, frame: pd.DataFrame, window: int, step_s: int, ttl_s: int) -> str:
    """Store the last `window` candles of `frame` (with the rest of their first block, when
    `frame` has it) and answer the snapshot's entry for the market."""
    ranked = frame.iloc[-window:]
    digests = blocks.put(from_block_start(frame, step_s, ranked.index[0]), step_s, ttl_s)
    return json.dumps({"blocks": digests, "from": int(ranked.index[0].value // 10**9)}, separators=(",", ":"))


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
