"""Data quality on every ranking: CSVs with planted gaps, zero volume, a short history, a stale
market and a price jump; INIT finds and names each, and leaves out the markets whose data cannot
carry the indicators (the others are ranked)."""

import shutil

import pandas as pd
import pytest

from analysis.explain import data_line, market_lines, quality_lines
from analysis.models import RankingConfig, Status

pytestmark = pytest.mark.shared_data

CLEAN = ["BTC/USDT", "LINK/USDT"]
PLANTED = {
    "ETH/USDT": "gaps",
    "SOL/USDT": "zero volume",
    "PEPE/USDT": "short",
    "DOGE/USDT": "stale",
    "XRP/USDT": "jump",
}


def plant(folder, shared_data_dir, symbol, what):
    name = f"{symbol.replace('/', '_')}-1h.csv"
    frame = pd.read_csv(shared_data_dir / name)
    if what == "gaps":
        frame = frame.drop(index=[2000, 2001, 2100])  # three candles missing inside the window
    elif what == "zero volume":
        frame.loc[[1990, 2050, 2051, 2140], "volume"] = 0.0
    elif what == "short":
        frame = frame.iloc[-120:]
    elif what == "stale":
        frame = frame.iloc[:-48]  # its last trade two days before the others' newest candle
    elif what == "jump":
        frame.loc[2100, ["close", "high"]] = frame.loc[2100, "close"] * 2  # a bad tick
    frame.to_csv(folder / name, index=False)


@pytest.fixture
def planted_dir(tmp_path, shared_data_dir):
    for symbol in CLEAN:
        name = f"{symbol.replace('/', '_')}-1h.csv"
        shutil.copy(shared_data_dir / name, tmp_path / name)
    for symbol, what in PLANTED.items():
        plant(tmp_path, shared_data_dir, symbol, what)
    return tmp_path


def run(runtime, local_service, queue, actor, folder, markets, top_k=2):
    # Built as a schedule's fixed config would be, before the data changed under it: the factory
    # refuses a short history it is shown, INIT is what meets it later.
    config = RankingConfig(
        markets=markets,
        timeframe="1h",
        top_k=top_k,
        target_confidence=0.5,
        data_source=f"csv:{folder}",
        window=500,
    )
    gist = local_service.start(config, actor)
    queue.drain(runtime)
    return local_service.get(gist.id, actor)


def test_each_planted_problem_is_found_and_named(runtime, local_service, queue, actor, planted_dir):
    done = run(runtime, local_service, queue, actor, planted_dir, CLEAN + list(PLANTED))
    assert done.status == Status.COMPLETED, done.reason
    quality = local_service.explain(done.id, actor)["data_quality"]
    markets = quality["markets"]
    assert markets["ETH/USDT"]["gaps"] == 3
    assert markets["SOL/USDT"]["zero_volume"] == 4
    assert markets["XRP/USDT"]["jumps"] == 2 and markets["XRP/USDT"]["biggest_jump"] >= 1.9  # up, then back
    assert quality["left_out"]["PEPE/USDT"].startswith(
        "short history: 120 candles; the indicators need 312 to settle (300 of warm-up"
    )
    assert quality["left_out"]["DOGE/USDT"].startswith("stale: last traded 2024-09-04 04:00 UTC")
    assert set(quality["left_out"]) == {"PEPE/USDT", "DOGE/USDT"}
    for symbol in CLEAN:
        assert {k: markets[symbol][k] for k in ("gaps", "zero_volume", "jumps")} == {
            "gaps": 0,
            "zero_volume": 0,
            "jumps": 0,
        }
    # Left-out markets are not ranked; the others are, flagged ones included.
    ranked = set(done.state["markets"])
    assert ranked == set(CLEAN) | {"ETH/USDT", "SOL/USDT", "XRP/USDT"}
    assert quality["ranked"] == 5
    # The card's line and the full list name them.
    line = data_line(done)
    assert line.startswith("data: 7 markets · 1h to 2024-09-06 04:00 UTC · 3 gaps in ETH/USDT")
    assert "PEPE/USDT 120 candles (short history, left out)" in line or "more (Why)" in line
    full = "\n".join(quality_lines(local_service.explain(done.id, actor)))
    for symbol in PLANTED:
        assert f"  {symbol}: " in full
    assert "4 zero-volume candles" in full and "2 price jumps (up to x" in full
    # One market in full says what its own data held.
    eth = "\n".join(market_lines(local_service.explain(done.id, actor, "ETH/USDT")))
    assert "data: 500 candles to 2024-09-06 04:00 UTC (last trade 2024-09-06 04:00 UTC), 3 gaps, " in eth


def test_too_few_markets_left_fails_with_the_reasons(runtime, local_service, queue, actor, planted_dir):
    done = run(runtime, local_service, queue, actor, planted_dir, ["BTC/USDT", "PEPE/USDT", "DOGE/USDT"])
    assert done.status == Status.FAILED
    assert done.reason.startswith(
        "only 1 of 3 markets have data to rank (top 2 needs 2): PEPE/USDT short history: 120 candles"
    )
    assert "DOGE/USDT stale" in done.reason
