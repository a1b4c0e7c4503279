"""Every ranking explains itself: a `score` ranking's exact per-indicator breakdown, on the real
Binance candles, through the service (`explain`, `status --json`)."""

import math

import pytest

from analysis.config_factory import RankingConfigFactory
from analysis.errors import NotFound
from analysis.explain import why_lines
from analysis.markets.csv_dir import CsvDirProvider
from analysis.markets.indicators import SNAPSHOT_FIELDS
from analysis.models import Status

pytestmark = pytest.mark.shared_data


@pytest.fixture
def real_ranking(runtime, local_service, queue, actor, shared_data_dir):
    """A score ranking of all 40 real markets, every step run in this process."""
    factory = RankingConfigFactory(runtime.settings, CsvDirProvider(shared_data_dir))
    config = factory.create_ranking_config(markets=40, top_k=40)
    gist = local_service.start(config, actor)
    queue.drain(runtime)
    done = local_service.get(gist.id, actor)
    assert done.status == Status.COMPLETED, done.reason
    return done


def test_every_market_of_a_real_ranking_adds_up_to_its_score(real_ranking, local_service, actor):
    document = local_service.explain(real_ranking.id, actor)
    assert len(document["markets"]) == 40
    for market, item in zip(document["markets"], real_ranking.result):
        assert market["symbol"] == item.symbol and market["score"] == item.score
        rows = market["breakdown"]
        assert {r["component"] for r in rows} == {"trend", "momentum", "macd", "band", "strength"}
        # Contributions add up to the score (stored to 6 decimals, they to 9) and each is weight x value.
        assert math.isclose(sum(r["contribution"] for r in rows), item.score, abs_tol=5e-7 + 3e-9)
        assert market["contributions_sum"] == item.score
        for row in rows:
            assert math.isclose(row["contribution"], row["weight"] * row["normalised"], abs_tol=2e-9)
        # The breakdown reads the indicator snapshot the ranking reports (same row, same values).
        by = {r["component"]: r for r in rows}
        snapshot = item.indicators
        assert {r["raw"] for r in rows} <= {snapshot[f] for f in SNAPSHOT_FIELDS}
        assert math.isclose(
            by["momentum"]["normalised"], max(-1, min(1, (snapshot["rsi_14"] - 50) / 25)), abs_tol=1e-5
        )
        assert math.isclose(by["strength"]["normalised"], min(1, snapshot["adx_14"] / 40), abs_tol=1e-5)
        assert math.isclose(
            by["band"]["normalised"], max(-1, min(1, 2 * snapshot["bb_pctb"] - 1)), abs_tol=1e-5
        )
        assert math.isclose(
            by["trend"]["normalised"],
            max(-1, min(1, snapshot["ema_trend"] / (3 * snapshot["atr_14"] / snapshot["close"]))),
            abs_tol=1e-4,
        )
        assert math.isclose(
            by["macd"]["normalised"],
            max(-1, min(1, snapshot["macd_hist"] / snapshot["atr_14"])),
            abs_tol=1e-4,
        )
        # Words a trader reads: '+0.31 RSI 71 (momentum)'.
        assert f"RSI {snapshot['rsi_14']:.0f} (momentum)" in by["momentum"]["words"]
        assert by["strength"]["words"].startswith(f"{by['strength']['contribution']:+.2f} ADX ")
        # The facts: 24-candle return and quote volume besides the indicators.
        assert {"return_24", "quote_volume_24", "rsi_14"} <= set(market["facts"])


def test_the_clean_real_data_has_no_finding(real_ranking, local_service, actor):
    quality = local_service.explain(real_ranking.id, actor)["data_quality"]
    assert quality["ranked"] == 40 and quality["left_out"] == {}
    assert quality["gaps"] == quality["zero_volume"] == quality["jumps"] == 0
    assert quality["newest_close"] == 1725595200  # 2024-09-06 04:00 UTC: the last candle's close
    lines = why_lines(real_ranking)
    assert lines[-1] == (
        "data: 40 markets · 1h to 2024-09-06 04:00 UTC · no gaps, zero volume, "
        "short, stale or jumping markets"
    )


def test_why_lists_the_top_k_with_their_two_strongest_contributions(real_ranking):
    lines = why_lines(real_ranking)
    first = real_ranking.result[0]
    assert lines[0].startswith(f"1. {first.symbol} {first.score:+.3f}: ")
    assert lines[0].count("(") == 2  # two contributions, each with what it measures


def test_explain_of_one_symbol_and_of_an_unknown_one(real_ranking, local_service, actor):
    symbol = real_ranking.result[2].symbol
    one = local_service.explain(real_ranking.id, actor, symbol.lower())
    assert [m["symbol"] for m in one["markets"]] == [symbol] and one["markets"][0]["rank"] == 3
    with pytest.raises(NotFound, match="not in the ranking"):
        local_service.explain(real_ranking.id, actor, "NOPE/USDT")


def test_status_json_carries_explain_and_data_quality(real_ranking, local_service, actor):
    document = local_service.status_document(real_ranking.id, actor)
    assert document["explain"]["markets"][0]["symbol"] == real_ranking.result[0].symbol
    assert document["data_quality"]["ranked"] == 40


def the_formula_before_issue_22(frame, views, kind):
    """The composite as docs/strategies.md writes it, computed in one expression."""
    rows = frame.iloc[::-1].iloc[:views]
    atr_share = (rows["atr_14"] / rows["close"]).clip(lower=1e-12)
    trend = (rows["ema_trend"] / (3 * atr_share)).clip(-1, 1)
    momentum = ((rows["rsi_14"] - 50) / 25).clip(-1, 1)
    macd = (rows["macd_hist"] / rows["atr_14"].clip(lower=1e-300)).clip(-1, 1)
    band = (2 * rows["bb_pctb"] - 1).clip(-1, 1)
    strength = (rows["adx_14"] / 40).clip(0, 1)
    score = (0.35 * trend + 0.25 * momentum + 0.25 * macd + 0.15 * band) * (0.5 + 0.5 * strength)
    return [round(float(v), 6) for v in (-score if kind == "exit" else score).fillna(-1.0)]


def test_the_sum_of_contributions_is_the_score_the_formula_gives(shared_data_dir):
    """Replays (track record) and old analyses rank as before: the same scores to six decimals,
    warm-up candles (no value yet: -1) included."""
    from analysis.markets.csv_dir import read_candles_csv
    from analysis.markets.indicators import indicator_frame
    from analysis.ranking.strategies.score import composite_scores

    for name in ("BTC", "PEPE", "CRV", "TRX", "WLD"):
        frame = indicator_frame(read_candles_csv(shared_data_dir / f"{name}_USDT-1h.csv"))
        for end in (40, 320, 2160):
            for kind in ("rank", "exit"):
                part = frame.iloc[:end]
                assert composite_scores(part, 12, kind) == the_formula_before_issue_22(part, 12, kind)
