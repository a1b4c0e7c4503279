"""`marketrank backtest --source ccxt:<exchange>` replays the shared candle cache: the cache is
filled through the real ccxt client against the Binance emulator, then the backtest reads it
without a single request to the exchange. In-process CLI (the test is about its output). Real data."""

import json

import pytest

from analysis.settings import get_settings
from cli.main import main
from tests.helpers import redis_snapshot
from tests.test_live_data import binance, closed_frame, fresh_settings, live  # noqa: F401

pytestmark = pytest.mark.shared_data
SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "DOGE/USDT"]
CACHED = 700  # candles per market: 388 hourly decisions after the 312 a live analysis needs


def backtest(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["backtest", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cached(live):
    """The candle cache as live analyses leave it: 700 hourly candles of five markets, and the
    whole 99-candle closed history of a new listing; then the emulator's request count is zeroed."""
    for symbol in SYMBOLS + ["NEW/USDT"]:
        live.provider.candles(symbol, "1h", CACHED)
    assert live.server.count("/api/v3/klines") >= len(SYMBOLS) + 1
    live.server.reset_counts()
    return live


@pytest.mark.slow
def test_backtest_replays_the_candle_cache_without_a_request_and_equals_the_csv_replay(
    capsys, cached, tmp_path
):
    before = redis_snapshot(cached.runtime.redis)
    code, out, err = backtest(capsys, "--source", "ccxt:binance", "--top", "2", "--json")
    assert code == 0, err
    assert cached.server.count() == 0  # not one request to the exchange
    assert redis_snapshot(cached.runtime.redis) == before  # and nothing written
    document = json.loads(out)
    assert (document["source"], document["candle_cache"]) == ("binance", True)
    assert document["left_out"] == [
        {"symbol": "NEW/USDT", "reason": "NEW/USDT has only 99 1h candles; at least 312 are needed"}
    ]
    records = document["records"]
    assert len(records) == CACHED - 312 + 1
    assert {m["symbol"] for m in records[0]["universe"]} == set(SYMBOLS)
    # The same candles exported to a folder replay to the same decisions.
    for symbol in SYMBOLS + ["NEW/USDT"]:
        frame = closed_frame(cached.server, symbol).iloc[-CACHED:]
        frame.to_csv(tmp_path / f"{symbol.replace('/', '_')}-1h.csv", index_label="timestamp")
    code, out, err = backtest(capsys, "--source", f"csv:{tmp_path}", "--top", "2", "--json")
    assert code == 0, err
    from_csv = json.loads(out)
    assert [(r["t"], r["universe"]) for r in records] == [
        (r["t"], r["universe"]) for r in from_csv["records"]
    ]
    assert document["summaries"] == from_csv["summaries"]
    assert from_csv["candle_cache"] is False and from_csv["left_out"] == document["left_out"]


def test_the_table_says_it_read_the_cache_and_which_market_it_left_out(capsys, cached):
    code, out, err = backtest(capsys, "--source", "ccxt:binance", "--top", "2", "--every", "24h")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("score · 1h · binance (its candle cache; no exchange request): ")
    assert lines[1] == "left out NEW/USDT: NEW/USDT has only 99 1h candles; at least 312 are needed"
    assert cached.server.count() == 0


@pytest.mark.slow
def test_market_data_ccxt_is_the_default_source_of_a_backtest(capsys, cached):
    code, out, err = backtest(capsys, "--symbols", "BTC/USDT,ETH/USDT,SOL/USDT", "--top", "1", "--json")
    assert code == 0, err
    assert json.loads(out)["candle_cache"] is True and cached.server.count() == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--timeframe", "4h"],
            (
                "error: the candle cache of ccxt:binance holds no 4h candles (a backtest "
                "never asks the exchange: an analysis of that timeframe fills the cache)"
            ),
        ),
        (
            ["--symbols", "BTC/USDT,ADA/USDT"],
            ("error: unknown symbol ADA/USDT: the candle cache of ccxt:binance holds none of its candles"),
        ),
        (
            ["--symbols", "BTC/USDT,NEW/USDT", "--top", "1"],
            "error: NEW/USDT has only 99 1h candles; at least 312 are needed",
        ),
    ],
)
def test_what_the_cache_cannot_replay_is_one_line_and_exit_2(capsys, cached, args, message):
    before = redis_snapshot(cached.runtime.redis)
    code, out, err = backtest(capsys, "--source", "ccxt:binance", *args)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith(message), err
    assert cached.server.count() == 0 and redis_snapshot(cached.runtime.redis) == before


def test_the_default_horizons_are_the_track_horizons_setting(capsys, shared_data_dir, monkeypatch):
    monkeypatch.setenv("TRACK_HORIZONS", "2,6")
    get_settings.cache_clear()
    code, out, err = backtest(
        capsys,
        "--source",
        f"csv:{shared_data_dir}",
        "--symbols",
        "BTC/USDT,ETH/USDT,SOL/USDT",
        "--top",
        "1",
        "--from",
        "2024-09-01",
        "--json",
    )
    assert code == 0, err
    document = json.loads(out)
    assert document["horizons"] == [2, 6] and set(document["records"][0]["horizons"]) == {"2", "6"}
