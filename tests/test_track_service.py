"""What the trader reads of the track record: the completed card's line (an edge, no edge, not
enough history), a scheduled run's previous top K, and `marketrank track --json`."""

import json
import re
import uuid
from pathlib import Path

import numpy as np
import pytest

from analysis.track.record_store import RecordStore
from analysis.track.service import TrackService
from cli.main import main as cli_main
from tests.track_fixtures import (
    MARKETS,
    csv_config,
    decision_t_ms,
    forward_return,
    run_to_completion,
    seed_scored_records,
    series,
    write_folder,
)


@pytest.fixture
def records(runtime):
    return RecordStore(runtime.redis, runtime.keys, retention_days=runtime.settings.track_retention_days)


@pytest.fixture
def track(runtime):
    return TrackService(runtime.redis, runtime.keys, retention_days=180, horizons=[1, 4, 24])


@pytest.fixture
def folder(tmp_path):
    name = f"seed{uuid.uuid4().hex[:6]}"
    return name, write_folder(tmp_path / name, {s: series(s) for s in MARKETS})


def completed_card_gist(local_service, queue, runtime, settings, source, actor):
    return run_to_completion(local_service, queue, runtime, csv_config(settings, source), actor)


def test_a_card_says_by_how_much_the_top_k_beat_the_universe(
    folder, settings, local_service, queue, runtime, actor, records, track
):
    name, source = folder
    seeded = seed_scored_records(
        records, source, n=35, every_bars=24, rank_by=lambda f, row: forward_return(f, row, 24)
    )  # foresight
    gist = completed_card_gist(local_service, queue, runtime, settings, source, actor)
    line = track.card_line(gist)
    excess = [records.results(s.id)[24]["score"]["top_k_excess"] for s in seeded]
    match = re.fullmatch(
        r"Track record \(score · 1h · 24h ahead, 35 picks\): top 3 beat the "
        r"universe by \+(\d+\.\d\d)% ± (\d+\.\d\d)%; IC (\d\.\d\d)",
        line,
    )
    assert match, line
    assert float(match[1]) == pytest.approx(np.mean(excess) * 100, abs=0.006)
    assert float(match[3]) == 1.0  # ranked by the very returns it is scored on


def test_without_an_edge_the_card_says_so_plainly(
    folder, settings, local_service, queue, runtime, actor, records, track
):
    name, source = folder
    seed_scored_records(
        records,
        source,
        n=35,
        every_bars=24,
        rank_by=lambda f, row: forward_return(f, row, 24) * (-1) ** (row // 24),
    )
    # right every other pick, exactly wrong in between: no edge
    gist = completed_card_gist(local_service, queue, runtime, settings, source, actor)
    line = track.card_line(gist)
    assert "no edge shown: top 3 vs the universe" in line, line


def test_below_thirty_independent_picks_the_card_says_not_enough_history(
    folder, settings, local_service, queue, runtime, actor, records, track
):
    name, source = folder
    seed_scored_records(
        records, source, n=12, every_bars=24, rank_by=lambda f, row: forward_return(f, row, 24)
    )
    gist = completed_card_gist(local_service, queue, runtime, settings, source, actor)
    assert (
        track.card_line(gist)
        == "Track record (score · 1h · 24h ahead, 12 picks): not enough history yet (12 of 30)"
    )
    # hourly picks 24 bars ahead share their windows: 48 picks an hour apart are 2 independent
    fresh = write_folder(Path(folder[1][4:] + "h"), {s: series(s) for s in MARKETS})
    seed_scored_records(records, fresh, n=48, every_bars=1, rank_by=lambda f, row: forward_return(f, row, 24))
    gist = completed_card_gist(local_service, queue, runtime, settings, fresh, actor)
    assert track.card_line(gist).endswith("48 picks): not enough history yet (2 of 30)")


def test_a_scheduled_run_says_how_the_previous_runs_top_k_did_since(
    folder, settings, local_service, queue, runtime, actor, track
):
    name, source = folder
    rows = (700, 710)
    gists = []
    for row in rows:
        config = csv_config(settings, source, t_ms=decision_t_ms(row))
        gist = local_service.start(config, actor, schedule="sch-" + name)
        queue.drain(runtime)
        gists.append(local_service.get(gist.id, actor))
    assert track.previous_run_line(gists[0]) == ""  # the schedule's first run
    first = track.record_of(gists[0]).record
    since = {s: series(s)["close"].iloc[rows[1] - 1] / series(s)["close"].iloc[rows[0]] - 1 for s in MARKETS}
    top = np.mean([since[s] for s in first.top()])
    assert (
        track.previous_run_line(gists[1])
        == f"previous top 3: {top * 100:+.2f}%, universe {np.mean(list(since.values())) * 100:+.2f}%"
    )
    assert track.previous_run_line(gists[1]) in track.card_lines(gists[1])
    # turnover: against the previous record of the same schedule (the first has none)
    import time

    from analysis.track.live_evaluate import evaluate_due

    evaluate_due(track.store, [1, 4, 24], time.time(), retry_s=60)
    second = track.record_of(gists[1]).record
    turnover = [track.store.results(track.record_of(g).id)[1]["score"]["turnover"] for g in gists]
    assert turnover == [None, 1 - len(set(first.top()) & set(second.top())) / 3]


def test_track_json_gives_every_horizon_with_intervals_and_baselines(folder, records, capsys):
    name, source = folder
    seed_scored_records(
        records, source, n=35, every_bars=24, rank_by=lambda f, row: forward_return(f, row, 24)
    )
    assert cli_main(["track", "score", "1h", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["horizons"] == [1, 4, 24] and document["retention_days"] == 180
    group = next(g for g in document["groups"] if g["source"] == f"csv {name}")
    assert (group["strategy"], group["timeframe"], group["top_k"], group["records"]) == ("score", "1h", 3, 35)
    day = next(h for h in group["horizons"] if h["horizon"] == 24)
    for metric in ("ic", "top_k_excess", "hit_rate"):
        assert {"mean", "ci95_low", "ci95_high", "n", "n_independent", "enough"} <= set(day[metric])
    assert day["top_k_excess"]["n_independent"] == 35 and day["top_k_excess"]["enough"]
    assert set(day["baselines"]) == {"volume", "momentum"}
    low, high = day["random_top_k_excess_95"]
    assert low < 0 < high < day["top_k_excess"]["mean"]


def test_track_refuses_what_is_neither_a_strategy_nor_a_timeframe(capsys):
    assert cli_main(["track", "banana"]) == 2
    assert capsys.readouterr().err.startswith("error: 'banana' is neither a strategy")


@pytest.mark.slow
def test_a_demo_card_says_demo_picks_are_never_scored(local_service, queue, runtime, factory, actor, track):
    done = run_to_completion(
        local_service, queue, runtime, factory.create_ranking_config(markets=5, top_k=2), actor
    )
    assert done.demo
    assert track.card_line(done).startswith("Track record: none on demo data")
