"""Live records of a ccxt source are scored from the shared candle cache: the real ccxt client
against the Binance emulator; one read per market for every record of a pass. Real data."""

import time

import numpy as np
import pytest

from analysis.service import Actor
from analysis.track.live_evaluate import evaluate_due
from analysis.track.record_store import RecordStore
from tests.test_live_data import binance, closed_frame, fresh_settings, live  # noqa: F401

pytestmark = pytest.mark.shared_data
SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "DOGE/USDT"]
KLINES = "/api/v3/klines"


def test_live_records_are_scored_from_the_candle_cache_one_read_per_market(live):
    step_ms = 3600_000
    records = RecordStore(live.runtime.redis, live.runtime.keys, retention_days=180)
    config = live.factory.create_ranking_config(symbols=SYMBOLS, top_k=2)
    ids = []
    for hours_ago in (40, 30):  # two decisions in the past, so their horizons have closed
        at = config.model_copy(update={"candles_to": config.candles_to - hours_ago * 3600})
        gist = live.service.start(at, Actor("trader-1"))
        live.queue.drain(live.runtime)
        done = live.service.store.load(gist.id)
        assert done.status.value == "COMPLETED", done.reason
        ids.append(f"{done.id}:{done.seq}")
    live.server.reset_counts()
    counts = evaluate_due(records, [1, 4, 24], time.time(), retry_s=60)
    assert counts.scored >= 6
    # both records read each market once, from the cache INIT filled: no request at all
    assert live.server.count(KLINES) <= len(SYMBOLS)
    rec = records.get(ids[0]).record
    r = {}
    for symbol in SYMBOLS:
        frame = closed_frame(live.server, symbol)
        opens = frame.index.as_unit("ms").asi8
        entry = frame["close"].iloc[int(np.searchsorted(opens, rec.t))]
        exit_ = frame["close"].iloc[int(np.searchsorted(opens, rec.t + 4 * step_ms))]
        r[symbol] = exit_ / entry - 1
    expected = np.mean([r[s] for s in rec.top()]) - np.mean(list(r.values()))
    assert records.results(ids[0])[4]["score"]["top_k_excess"] == pytest.approx(expected, abs=1e-9)
