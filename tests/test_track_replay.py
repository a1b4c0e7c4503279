"""The walk-forward replay on the real candles: no look-ahead, indicators computed once equal
those computed on the candles up to t, and a replayed decision equals what a real analysis
started at t (through the real worker) reports."""

import numpy as np
import pandas as pd
import pytest

from analysis.config_factory import RankingConfigFactory
from analysis.markets.csv_dir import CsvDirProvider
from analysis.markets.indicators import indicator_frame
from analysis.ranking.strategies.score import composite_scores
from analysis.track.replay import ReplayPlan, market_history, replay_records
from tests.helpers import wait_for_status
from tests.track_data import HOUR_MS, copy_until

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def candles(shared_data_dir):
    provider = CsvDirProvider(shared_data_dir)
    # Copies: the provider's frames are cached and shared.
    return {s: provider.candles(s, "1h", 10_000).copy() for s in provider.list_markets("1h")[:14]}


def close_ms(frame: pd.DataFrame, row: int) -> int:
    return int(frame.index[row].value // 10**6) + HOUR_MS


def plan_around(t: int, **overrides) -> ReplayPlan:
    options = dict(
        timeframe="1h", k=3, horizons=(1,), markets=8, start_ms=t - 30 * HOUR_MS, end_ms=t + 30 * HOUR_MS
    )
    return ReplayPlan(**{**options, **overrides})


def decisions(candles, plan) -> dict[int, object]:
    return {record.t: (record, values) for record, values in replay_records(candles, plan)}


def garbled(candles, t: int, kind: str, seed: int = 1) -> dict[str, pd.DataFrame]:
    """Every market's candles after `t` changed: closes, volumes, or a whole bar removed."""
    rng = np.random.default_rng(seed)
    changed = {}
    for symbol, frame in candles.items():
        frame = frame.copy()
        after = frame.index.as_unit("ms").asi8 + HOUR_MS > t
        if kind == "close":
            frame.loc[after, "close"] *= rng.uniform(0.5, 1.5, after.sum())
        elif kind == "volume":
            frame.loc[after, "volume"] *= rng.uniform(0.01, 100, after.sum())
        elif kind == "bar":
            frame = frame.drop(frame.index[np.argmax(after)])  # the first candle after t
        changed[symbol] = frame
    return changed


@pytest.mark.parametrize("kind", ["close", "volume", "bar"])
def test_changing_any_candle_after_t_changes_no_decision_made_at_t(candles, kind):
    t = close_ms(candles["BTC/USDT"], 1500)
    plan = plan_around(t)
    before = decisions(candles, plan)
    after = decisions(garbled(candles, t, kind), plan)
    assert [x for x in before if x <= t] == [x for x in after if x <= t] and len(before) > 30
    for when in (x for x in before if x <= t):
        assert after[when] == before[when]  # universe, scores, ranks and baselines' values
    # The garbling did reach the replay: decisions after t moved.
    assert any(after.get(x) != before[x] for x in before if x > t)


def test_changing_the_candle_that_closes_at_t_may_change_the_decision(candles):
    btc = candles["BTC/USDT"]
    t = close_ms(btc, 1500)
    plan = plan_around(t, start_ms=t, end_ms=t)
    ((record, _),) = decisions(candles, plan).values()
    touched = dict(candles)
    leader = record.universe[-1].symbol  # the worst market jumps 30% in the candle closing at t
    frame = touched[leader].copy()
    row = frame.index.as_unit("ms").asi8 + HOUR_MS == t
    frame.loc[row, ["close", "high"]] *= 1.3
    touched[leader] = frame
    ((changed, _),) = decisions(touched, plan).values()
    assert changed.universe != record.universe
    assert changed.symbols().index(leader) < record.symbols().index(leader)


@pytest.mark.parametrize("row", [320, 499, 900, 2159])
def test_indicators_once_over_the_series_equal_those_on_the_candles_up_to_t(candles, row):
    plan = plan_around(0)
    for symbol in ("BTC/USDT", "BONK/USDT", "AAVE/USDT"):
        frame = candles[symbol]
        history = market_history(symbol, frame, plan)
        up_to_t = composite_scores(indicator_frame(frame.iloc[: row + 1]), 1, "rank")[0]
        assert history.score[row] == up_to_t  # exactly: the indicators are causal
        # A live analysis reads its last WINDOW_CANDLES (500) only: its EMAs start later.
        window = composite_scores(indicator_frame(frame.iloc[max(0, row + 1 - 500) : row + 1]), 1, "rank")[0]
        assert abs(history.score[row] - window) <= 1e-6


@pytest.mark.parametrize("row", [400, 1500])
@pytest.mark.slow
def test_a_replayed_decision_equals_a_real_analysis_started_at_t(
    shared_data_dir, tmp_path, row, settings, service, actor, worker
):
    provider = CsvDirProvider(shared_data_dir)
    btc = provider.candles("BTC/USDT", "1h", 10_000)
    t = close_ms(btc, row)
    # What a live csv source held at t: every candle that had closed by then.
    copy_until(shared_data_dir, tmp_path / "as_of_t", t)
    factory = RankingConfigFactory(settings, CsvDirProvider(tmp_path / "as_of_t"))
    config = factory.create_ranking_config(markets=12, top_k=4)
    done = wait_for_status(service, service.start(config, actor).id, actor, ["COMPLETED"])

    everything = {s: provider.candles(s, "1h", 10_000) for s in provider.list_markets("1h")}
    plan = ReplayPlan(
        timeframe="1h",
        k=4,
        horizons=(1,),
        markets=12,
        start_ms=t,
        end_ms=t,
        window=settings.window_candles,
        views=settings.score_views,
        max_thin=settings.max_thin_share,
        excluded_bases=tuple(settings.excluded_bases),
    )
    ((record, _),) = replay_records(everything, plan)
    assert record.t == config.candles_to * 1000
    assert record.top() == [item.symbol for item in done.result]  # same top K, same order
    live_scores = {s: v[0] for s, v in done.state["scores"].items()}
    live_order = sorted(live_scores, key=lambda s: (-live_scores[s], s))
    assert record.symbols() == live_order  # the whole universe, not only the top K
    for market in record.universe:
        assert market.score == pytest.approx(live_scores[market.symbol], abs=1e-6)


def test_the_replay_s_baselines_equal_those_of_a_live_record_from_the_candles(candles):
    """One rule for both: replay.decide's values and baselines.baseline_record on the candles."""
    from analysis.track.baselines import baseline_record, ranked_by

    t = close_ms(candles["BTC/USDT"], 1200)
    ((record, values),) = decisions(candles, plan_around(t, start_ms=t, end_ms=t)).values()
    for name in ("volume", "momentum"):
        live = baseline_record(record, name, candles, HOUR_MS)
        assert live == ranked_by(record, values[name], name)
