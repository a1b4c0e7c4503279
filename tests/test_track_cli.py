"""`marketrank backtest` as a user runs it (in-process: the test is about its output and its
refusals; it reads no Redis)."""

import json

import pytest

from cli.main import main

pytestmark = pytest.mark.shared_data


def backtest(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["backtest", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def source(shared_data_dir) -> str:
    return f"csv:{shared_data_dir}"


@pytest.mark.slow
def test_backtest_json_has_the_records_and_the_summaries(capsys, source):
    code, out, err = backtest(
        capsys,
        "--source",
        source,
        "--markets",
        "8",
        "--top",
        "3",
        "--from",
        "2024-08-20",
        "--to",
        "2024-09-06T04:00Z",
        "--every",
        "4h",
        "--horizons",
        "1,4",
        "--json",
    )
    assert code == 0, err
    document = json.loads(out)
    assert (document["strategy"], document["timeframe"], document["source"]) == ("score", "1h", "csv")
    assert document["k"] == 3 and document["horizons"] == [1, 4]
    records = document["records"]
    assert records[0]["time"] == "2024-08-20T00:00:00Z" and records[-1]["time"] == "2024-09-06T04:00:00Z"
    assert all(r["t"] % (4 * 3_600_000) == 0 for r in records)  # a decision every 4 h, on the clock
    first = records[0]
    assert [m["rank"] for m in first["universe"]] == list(range(1, 9))
    assert set(first["universe"][0]) == {"symbol", "score", "rank"}
    scores = [m["score"] for m in first["universe"]]
    assert scores == sorted(scores, reverse=True)
    assert {"top_k_excess", "ic", "hit_rate"} <= set(first["horizons"]["1"])
    assert -1 <= first["horizons"]["4"]["ic"] <= 1
    # The last decision's exits have not closed in the data: not scored, said so with null.
    assert records[-1]["horizons"] == {"1": None, "4": None}
    assert records[-2]["horizons"]["4"] is None and records[-2]["horizons"]["1"] is not None
    summaries = document["summaries"]
    assert set(summaries) == {"score", "volume", "momentum"}
    ic = summaries["score"]["4"]["ic"]
    assert {"mean", "ci95_low", "ci95_high", "icir", "n", "n_independent", "method", "enough"} <= set(ic)
    assert ic["n"] == len(records) - 2 and ic["n_independent"] == ic["n"]  # 4 h apart: no overlap
    assert summaries["score"]["1"]["ic"]["n"] == len(records) - 1
    assert ic["ci95_low"] <= ic["mean"] <= ic["ci95_high"]
    low, high = document["random"]["1"]["top_k_excess"]
    assert low < 0 < high  # random K is an interval around nothing


def test_backtest_prints_the_table_with_horizons_as_columns(capsys, source):
    code, out, err = backtest(
        capsys,
        "--source",
        source,
        "--symbols",
        "BTC/USDT,ETH/USDT,SOL/USDT,XRP/USDT",
        "--top",
        "2",
        "--from",
        "2024-08-01",
        "--to",
        "2024-08-10",
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(
        "score · 1h · csv: 217 decisions every 1 candle(s) from "
        "2024-08-01T00:00:00Z to 2024-08-10T00:00:00Z, top 2 of 4 markets"
    )
    assert lines[1].split() == ["1", "bar", "ahead", "4", "bars", "ahead", "24", "bars", "ahead"]
    labels = [line[:26].strip() for line in lines[2:-1]]
    assert [label for label in labels if label.split()[0] in ("score", "volume", "momentum", "random")] == [
        "score     IC",
        "volume    IC",
        "momentum  IC",
        "random K  IC",
    ]
    assert "top-2 excess" in out and "too few" in out  # 217 hourly records are 9 days at 24 bars


def test_backtest_refuses_the_llm_strategy_with_the_reason(capsys, source):
    code, out, err = backtest(capsys, "--source", source, "--strategy", "llm")
    assert code == 2 and out == ""
    assert err.strip() == (
        "error: the llm strategy is not replayed: a language model has seen "
        "that history in training, so its past picks would look better than it can do"
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--horizons", "0,4"], "--horizons '0,4': give bar counts 1..1000"),
        (["--every", "90m"], "--every '90m' must be a whole number of 1h candles"),
        (["--from", "last tuesday"], "--from 'last tuesday' is not an ISO date or time"),
        (["--markets", "8", "--top", "8"], "--top must be 1..7"),
        (["--markets", "1"], "--markets must be 2..100, not 1"),
        (["--symbols", "BTC/USDT,NOPE/USDT"], "unknown symbol NOPE/USDT"),
        (["--from", "2024-09-01", "--to", "2024-08-01"], "--from is after --to"),
        (["--strategy", "magic"], "unknown strategy 'magic': only score can be replayed"),
        (["--from", "2030-01-01"], "no decision to replay"),
    ],
)
@pytest.mark.slow
def test_backtest_bad_input_gets_one_line_and_exit_2(capsys, source, args, message):
    code, out, err = backtest(capsys, "--source", source, *args)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err, err
