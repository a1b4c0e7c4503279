"""Pick records, forward returns, per-record metrics and overlap-aware summaries, against values
computed by hand (tests/track_data.py writes the small CSV)."""

import math

import numpy as np
import pytest

from analysis.markets.csv_dir import CsvDirProvider
from analysis.track.aggregate import independent_count, summarize
from analysis.track.baselines import baseline_record
from analysis.track.metrics import record_metrics
from analysis.track.model import BadRecord, PickRecord, Ranked
from analysis.track.returns import forward_returns
from tests.track_data import HOUR_MS, START, write_csv

T0 = int(START.value // 10**6)
# Decision at 03:00: the candle opening 02:00 was the last closed one. Entry = close of the
# candle opening 03:00; exit (h=1) = close of the one opening 04:00, (h=2) 05:00.
DECISION = T0 + 3 * HOUR_MS


def record(symbols=("A/USDT", "C/USDT", "B/USDT", "D/USDT"), k=2, t=DECISION) -> PickRecord:
    return PickRecord(
        t=t,
        timeframe="1h",
        source="csv",
        strategy="score",
        model=None,
        k=k,
        analysis_id="a1",
        schedule_id=None,
        universe=tuple(Ranked(s, 1.0 - i / 10, i + 1) for i, s in enumerate(symbols)),
    )


@pytest.fixture
def candles(tmp_path):
    write_csv(tmp_path, "A/USDT", [10, 10, 10, 10, 11, 12])
    write_csv(tmp_path, "B/USDT", [20, 20, 20, 20, 19, 18])
    write_csv(tmp_path, "C/USDT", [5, 5, 5, 4, 4, 5])
    write_csv(tmp_path, "D/USDT", [8, 8, 8, 8])  # delisted after the entry candle
    provider = CsvDirProvider(tmp_path)
    return {s: provider.candles(s, "1h", 100) for s in provider.list_markets("1h")}


def test_forward_returns_enter_one_bar_after_the_decision_and_flag_a_missing_market(candles):
    known_until = T0 + 6 * HOUR_MS  # every candle above has closed
    returns = forward_returns(record(), candles, [1, 2], known_until)
    assert returns[1].returns == pytest.approx(
        {"A/USDT": 0.10, "C/USDT": 0.0, "B/USDT": -0.05, "D/USDT": 0.0}
    )
    assert returns[2].returns == pytest.approx(
        {"A/USDT": 0.20, "C/USDT": 0.25, "B/USDT": -0.10, "D/USDT": 0.0}
    )
    # D has no candle at the exit: priced at its last close, flagged, and still in the universe.
    assert returns[1].flagged == returns[2].flagged == ("D/USDT",)


def test_a_horizon_whose_exit_has_not_closed_is_not_scored(candles):
    known_until = T0 + 5 * HOUR_MS  # the exit candle of h=1 closed at 05:00; h=2's closes at 06:00
    returns = forward_returns(record(), candles, [1, 2], known_until)
    assert list(returns) == [1]
    assert forward_returns(record(), candles, [1, 2], known_until - 1) == {}


def test_metrics_match_hand_computed_values(candles):
    returns = forward_returns(record(), candles, [1, 2], T0 + 6 * HOUR_MS)
    one = record_metrics(record(), returns[1], previous_top=["A/USDT", "B/USDT"])
    # r best first = [0.10, 0, -0.05, 0]: mean 0.0125, top 2 mean 0.05, median 0.
    assert one.top_k_excess == pytest.approx(0.0375)
    assert one.hit_rate == 0.5
    assert one.top_minus_bottom == pytest.approx(0.10)
    assert one.ic == pytest.approx(3 / math.sqrt(22.5))  # ties in r share their average rank
    assert one.turnover == 0.5 and one.flagged == ("D/USDT",)
    two = record_metrics(record(), returns[2])
    # r best first = [0.20, 0.25, -0.10, 0]: mean 0.0875, top 2 mean 0.225, median 0.10.
    assert (two.top_k_excess, two.hit_rate, two.ic) == pytest.approx((0.1375, 1.0, 0.6))
    assert two.top_minus_bottom == pytest.approx(0.20) and two.turnover is None


def test_overlapping_records_count_about_n_over_h_independent_ones():
    times = [T0 + i * HOUR_MS for i in range(480)]
    rng = np.random.default_rng(3)
    values = rng.normal(0.001, 0.01, len(times))
    hourly = summarize(values, times, metric="ic", horizon=1, timeframe="1h")
    daily = summarize(values, times, metric="ic", horizon=24, timeframe="1h")
    assert (hourly.n, hourly.n_independent) == (480, 480)
    assert (daily.n, daily.n_independent) == (480, 20)
    assert daily.mean == hourly.mean  # the mean uses every record...
    width = lambda s: s.ci95_high - s.ci95_low  # noqa: E731
    # ...its interval only the independent ones: about sqrt(24) wider (t quantiles differ a bit).
    assert 4.9 * 1.0 < width(daily) / width(hourly) < 4.9 * 1.1
    assert independent_count(times[::4], 24, "1h") == 20  # every 4 h: 120 records, 20 apart


def test_below_thirty_independent_records_the_summary_says_so():
    times = [T0 + i * HOUR_MS for i in range(12 * 24)]
    summary = summarize([0.01] * len(times), times, metric="top_k_excess", horizon=24, timeframe="1h")
    assert not summary.enough
    assert summary.status() == "not enough history yet (12 of 30)"
    enough = summarize([0.01] * len(times), times, metric="top_k_excess", horizon=1, timeframe="1h")
    assert enough.enough and enough.status() == ""


def test_a_pick_record_round_trips_through_json_and_a_broken_one_is_refused_by_name():
    original = record()
    assert PickRecord.from_json(original.to_json()) == original
    assert original.top() == ["A/USDT", "C/USDT"]
    data = original.to_dict()
    del data["universe"]
    with pytest.raises(BadRecord, match="lacks the field 'universe'"):
        PickRecord.from_dict(data)
    with pytest.raises(BadRecord, match="ranked 1..n"):
        PickRecord.from_dict(
            {
                **original.to_dict(),
                "universe": [
                    {"symbol": "A/USDT", "score": 1, "rank": 2},
                    {"symbol": "B/USDT", "score": 0, "rank": 1},
                ],
            }
        )
    with pytest.raises(BadRecord, match="not valid JSON"):
        PickRecord.from_json("{")
    with pytest.raises(BadRecord, match="K"):
        PickRecord.from_dict({**original.to_dict(), "k": 9})


def test_baselines_rank_by_trailing_volume_and_momentum_from_candles_closed_by_t(tmp_path):
    # 30 hourly candles; the decision is at the close of the 26th (row 25).
    write_csv(tmp_path, "A/USDT", [10.0] * 30, volumes=[1.0] * 30)  # flat, 240 quote/24 h
    write_csv(tmp_path, "B/USDT", [10.0] * 2 + [12.0] * 28, volumes=[5.0] * 30)  # +20% since row 1
    write_csv(tmp_path, "C/USDT", [10.0] * 25 + [9.0] + [99.0] * 4, volumes=[3.0] * 26 + [1e6] * 4)
    provider = CsvDirProvider(tmp_path)
    candles = {s: provider.candles(s, "1h", 100) for s in provider.list_markets("1h")}
    decided = record(symbols=("A/USDT", "B/USDT", "C/USDT"), k=1, t=T0 + 26 * HOUR_MS)
    volume = baseline_record(decided, "volume", candles, HOUR_MS)
    momentum = baseline_record(decided, "momentum", candles, HOUR_MS)
    # Quote volume of rows 2..25: A 24*10*1, B 24*12*5, C 23*10*3 + 9*3 (the 1e6 bars come later).
    assert [(m.symbol, m.score) for m in volume.universe] == [
        ("B/USDT", 1440.0),
        ("C/USDT", 717.0),
        ("A/USDT", 240.0),
    ]
    # close(row 25) / close(row 1) - 1: B +20%, A 0, C -10% (C's jump after t is not seen).
    assert [(m.symbol, m.score) for m in momentum.universe] == [
        ("B/USDT", pytest.approx(0.2)),
        ("A/USDT", 0.0),
        ("C/USDT", pytest.approx(-0.1)),
    ]
    assert volume.strategy == "baseline:volume" and volume.t == decided.t and volume.k == 1
