"""The `marketrank` CLI as a user runs it, against the test Redis and a real worker: its commands
called in this process (tests/cli_runner.py), and real processes for what only a process shows
(an exit code at start-up, a closed pipe, a terminal)."""

import json
import os
import pty
import subprocess
import sys

import pytest

from tests.cli_runner import marketrank
from tests.helpers import redis_snapshot
from tests.servers import ROOT, free_port

pytestmark = pytest.mark.usefixtures("worker")


def marketrank_process(*args: str, **env: str) -> subprocess.CompletedProcess:
    """`marketrank` as its own process: what start-up and the exit code look like to a shell."""
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
def test_start_wait_prints_the_id_a_progress_bar_and_the_ranking_table():
    done = marketrank(
        "start",
        "--symbols",
        "BTC/USDT,ETH/USDT,SOL/USDT,XRP/USDT,DOGE/USDT",
        "--top",
        "3",
        "--owner",
        "cli-test",
        "--wait",
    )
    assert done.returncode == 0, done.stderr
    analysis_id = done.stdout.splitlines()[0]
    assert len(analysis_id) == 10 and analysis_id.isalnum()
    assert "[##############################] 100%" in done.stderr
    # Not a terminal: one plain progress line per change, no carriage returns.
    assert "\r" not in done.stderr
    assert all(line.startswith("[") and "confidence" in line for line in done.stderr.splitlines())
    assert "COMPLETED" in done.stdout and "DEMO DATA" in done.stdout
    table = done.stdout.split("rank  symbol")[1].strip().splitlines()[1:]
    assert [row.split()[0] for row in table] == ["1", "2", "3"]

    status = marketrank("status", analysis_id, "--json")
    document = json.loads(status.stdout)
    assert {
        "id",
        "status",
        "progress",
        "seq",
        "chain",
        "confidence",
        "target_confidence",
        "config",
        "history",
        "result",
    } <= set(document)
    assert document["status"] == "COMPLETED" and document["progress"] == 1.0
    assert [h["seq"] for h in document["history"]] == list(range(document["seq"] + 1))
    assert {"seq", "chain", "attempt", "worker", "started_at", "finished_at"} == set(document["history"][0])
    assert [r["rank"] for r in document["result"]] == [1, 2, 3]
    assert {"rank", "symbol", "score", "indicators"} == set(document["result"][0])

    listing = marketrank("list", "--owner", "cli-test")
    assert analysis_id in listing.stdout and "COMPLETED" in listing.stdout

    # explain: every ranked market with its two strongest contributions, and the data quality.
    assert set(document["explain"]["markets"][0]) >= {"breakdown", "contributions_sum", "facts"}
    assert document["data_quality"]["ranked"] == 5
    explained = marketrank("explain", analysis_id)
    assert explained.returncode == 0, explained.stderr
    lines = explained.stdout.splitlines()
    assert lines[0] == f"analysis {analysis_id} (score): per-indicator contributions that add up to the score"
    assert [line.split()[1] for line in lines[1:4]] == [r["symbol"] for r in document["result"]]
    assert "data: 5 markets · 1h to" in explained.stdout and "  nothing found" in explained.stdout
    first = document["result"][0]["symbol"]
    one = marketrank("explain", analysis_id, first)
    assert f"sum of contributions {document['result'][0]['score']:+.4f} = score" in one.stdout
    unknown = marketrank("explain", analysis_id, "NOPE/USDT")
    assert unknown.returncode == 2 and unknown.stderr.startswith("error: 'NOPE/USDT' is not in the ranking")


@pytest.mark.slow
def test_start_prints_only_the_id_and_control_commands_say_what_they_did():
    # One market per step, so the analysis is still running when `pause` comes.
    started = marketrank(
        "start", "--markets", "60", "--top", "5", "--owner", "cli-test-2", SCORE_BATCH_SIZE="1"
    )
    analysis_id = started.stdout.strip()
    assert started.returncode == 0 and len(analysis_id) == 10
    pause = marketrank("pause", analysis_id)
    if pause.returncode == 0:  # on a very fast machine it may have finished already
        assert pause.stdout.startswith("Paused")
        again = marketrank("pause", analysis_id)  # an idempotent no-op: a `set -e` script goes on
        assert (again.returncode, again.stdout.strip()) == (0, "Already paused.")
        assert marketrank("resume", analysis_id).stdout.strip() == "Resumed."
        again = marketrank("resume", analysis_id)  # exit 0 if still running, 1 if it completed
        assert (again.returncode, again.stdout.strip()) in (
            (0, "Already running."),
            (1, "Nothing to do: the analysis is already completed."),
        )
    waited = marketrank("wait", analysis_id)
    assert waited.returncode == 0 and "COMPLETED" in waited.stdout
    refine = marketrank("refine", analysis_id)
    assert refine.returncode == 0 and "Refining toward confidence 0.85" in refine.stdout
    assert marketrank("wait", analysis_id).returncode == 0
    cancel = marketrank("cancel", analysis_id)
    assert cancel.returncode == 1 and "already completed" in cancel.stdout


@pytest.mark.slow
def test_an_llm_analysis_from_the_cli_reports_its_comparisons_and_what_they_cost(llm_server, request):
    symbols = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "DOGE/USDT", "ADA/USDT"]
    llm_server.reset()
    llm_server.set_strengths({s: float(len(symbols) - i) for i, s in enumerate(symbols)})
    request.addfinalizer(lambda: llm_server.set_strengths({}))  # later tests rank other markets
    done = marketrank(
        "start",
        "--strategy",
        "llm",
        "--prompt",
        "cli llm case",
        "--symbols",
        ",".join(symbols),
        "--top",
        "2",
        "--target",
        "0.9",
        "--owner",
        "cli-llm",
        "--wait",
        **_llm_env(llm_server),
    )
    assert done.returncode == 0, done.stderr
    analysis_id = done.stdout.splitlines()[0]
    calls = llm_server.calls
    # Listwise by default (LLM_LIST_SIZE 10, so all six markets in each call): orders of 6, and
    # the one call for the judge's reasons once the ranking was done.
    assert f"llm judge: {calls - 1} orders of 6 · {calls} LLM calls" in done.stdout
    assert "exactly" not in done.stdout  # p_exact is not shown: it reads high (docs/ranking.md)
    table = done.stdout.split("rank  symbol")[1].strip().splitlines()[1:]
    assert {row.split()[1] for row in table} == set(symbols[:2])
    document = json.loads(marketrank("status", analysis_id, "--json").stdout)
    assert document["stats"]["calls"] == document["stats"]["comparisons"] + 1 == calls
    assert "p_exact" not in document
    # explain: the judge's reason for each of the top 2, beside the facts.
    explained = marketrank("explain", analysis_id)
    assert explained.returncode == 0, explained.stderr
    assert f"1. {symbols[0]}" in explained.stdout and ": strength 6" in explained.stdout
    one = json.loads(marketrank("explain", analysis_id, symbols[1], "--json").stdout)
    assert [(m["symbol"], m["reason"]) for m in one["markets"]] == [(symbols[1], "strength 5")]
    assert {"rsi_14", "return_24", "quote_volume_24"} <= set(one["markets"][0]["facts"])


def _llm_env(llm_server) -> dict[str, str]:
    """The CLI checks that an LLM is configured before it enqueues an llm analysis."""
    return {
        "OPENAI_BASE_URL": llm_server.base_url,
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_MODEL": "judge-small",
    }


@pytest.mark.parametrize(
    "args, message",
    [
        (["start", "--symbols", "BTC/USDT,NOPE/USDT"], "error: unknown symbol NOPE/USDT"),
        (["start", "--timeframe", "3m"], "error: unknown timeframe '3m'"),
        (
            ["start", "--symbols", "BTC/USDT,ETH/USDT", "--top", "5"],
            "error: top 5 is larger than the 2 markets",
        ),
        (["start", "--markets", "1000"], "error: 1000 markets is too many"),
        (["start", "--symbols", ""], "error: name at least two markets"),
        (["status", "zzzzzzzzzz"], "error: no analysis 'zzzzzzzzzz'"),
        (["pause", "../../etc"], "error: no analysis"),
        (
            ["start", "--kind", "exit", "--markets", "5"],
            "error: --kind exit ranks the markets you hold: name them with --symbols",
        ),
        (["start", "--kind", "exit"], "error: --kind exit ranks the markets you hold"),
        (["start", "--kind", "entry", "--strategy", "llm"], "error: --kind entry picks its strategy itself"),
    ],
)
def test_bad_input_gets_a_one_line_error_and_writes_nothing(runtime, args, message):
    before = redis_snapshot(runtime.redis)
    done = marketrank(*args)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and message in done.stderr
    assert redis_snapshot(runtime.redis) == before


@pytest.mark.slow
def test_redis_down_is_one_line_naming_the_url_and_what_to_do():
    url = f"redis://127.0.0.1:{free_port()}/0"
    for args in (["status", "abcdefghij"], ["list"], ["start", "--markets", "5"], ["stuck"]):
        done = marketrank(*args, REDIS_URL=url)
        assert done.returncode == 3, done.stderr
        assert done.stdout == ""
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: cannot reach Redis at {url}")
        assert "make run" in lines[0] and "REDIS_URL" in lines[0]
    # Listing demo markets needs no Redis; a live exchange's candle cache does.
    assert marketrank("markets", "--limit", "3", REDIS_URL=url).returncode == 0
    done = marketrank("markets", REDIS_URL=url, MARKET_DATA="ccxt:binance")
    assert done.returncode == 3 and done.stderr.startswith(f"error: cannot reach Redis at {url}")
    # The same from a process of its own: one line, exit code 3, whatever start-up does.
    done = marketrank_process("status", "abcdefghij", REDIS_URL=url)
    assert (done.returncode, done.stdout) == (3, "")
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith(f"error: cannot reach Redis at {url}")


@pytest.mark.slow
def test_a_reader_that_stops_early_gets_no_broken_pipe():
    started = marketrank("start", "--markets", "5", "--top", "2", "--owner", "cli-pipe", "--wait")
    analysis_id = started.stdout.splitlines()[0]
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "status", analysis_id],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.close()  # like `| head` that has read enough before the CLI writes
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0 and err == b""


@pytest.mark.slow
def test_progress_is_a_bar_redrawn_in_place_on_a_terminal():
    controller, terminal = pty.openpty()
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "cli.main",
                "start",
                "--markets",
                "20",
                "--top",
                "3",
                "--owner",
                "cli-tty",
                "--wait",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=terminal,
            timeout=120,
        )
        os.close(terminal)
        shown = read_all(controller)
    finally:
        os.close(controller)
    assert done.returncode == 0
    assert shown.count(b"\r[") >= 2 and b"] 100%" in shown, shown
    assert shown.count(b"\n") == 1, shown  # one line, redrawn in place, ended once


def read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other end is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.slow
def test_help_lists_allowed_values_defaults_and_exit_codes():
    text = marketrank("start", "--help").stdout
    for expected in (
        "5m, 15m, 1h, 4h, 1d (default 1h)",
        "score or llm (default score",
        "0.5..0.99 (default 0.8)",
        "(default 10)",
        "(default 30)",
        "exit codes:",
    ):
        assert expected in text, expected
    assert "3  Redis cannot be reached" in marketrank_process("--help").stdout
