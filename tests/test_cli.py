"""The `marketrank` CLI as a user runs it: a subprocess against the test Redis and a real worker."""

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import redis_snapshot
from tests.servers import ROOT

pytestmark = pytest.mark.usefixtures("worker")


def marketrank(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tasks.cli", *args], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout)


def test_start_wait_prints_the_id_a_progress_bar_and_the_ranking_table():
    done = marketrank("start", "--symbols", "BTC/USDT,ETH/USDT,SOL/USDT,XRP/USDT,DOGE/USDT",
                      "--top", "3", "--owner", "cli-test", "--wait")
    assert done.returncode == 0, done.stderr
    analysis_id = done.stdout.splitlines()[0]
    assert len(analysis_id) == 10 and analysis_id.isalnum()
    assert "[##############################] 100%" in done.stderr
    assert "COMPLETED" in done.stdout and "DEMO DATA" in done.stdout
    table = done.stdout.split("rank  symbol")[1].strip().splitlines()[1:]
    assert [row.split()[0] for row in table] == ["1", "2", "3"]

    status = marketrank("status", analysis_id, "--json")
    document = json.loads(status.stdout)
    assert {"id", "status", "progress", "seq", "chain", "confidence", "target_confidence",
            "config", "history", "result"} <= set(document)
    assert document["status"] == "COMPLETED" and document["progress"] == 1.0
    assert [h["seq"] for h in document["history"]] == list(range(document["seq"] + 1))
    assert {"seq", "chain", "attempt", "worker", "started_at", "finished_at"} == set(document["history"][0])
    assert [r["rank"] for r in document["result"]] == [1, 2, 3]
    assert {"rank", "symbol", "score", "indicators"} == set(document["result"][0])

    listing = marketrank("list", "--owner", "cli-test")
    assert analysis_id in listing.stdout and "COMPLETED" in listing.stdout


def test_start_prints_only_the_id_and_control_commands_say_what_they_did():
    # One market per step, so the analysis is still running when `pause` comes.
    started = marketrank("start", "--markets", "60", "--top", "5", "--owner", "cli-test-2",
                         SCORE_BATCH_SIZE="1")
    analysis_id = started.stdout.strip()
    assert started.returncode == 0 and len(analysis_id) == 10
    pause = marketrank("pause", analysis_id)
    if pause.returncode == 0:  # on a very fast machine it may have finished already
        assert pause.stdout.startswith("Paused")
        assert marketrank("pause", analysis_id).stdout.strip() == "Already paused."
        assert marketrank("resume", analysis_id).stdout.strip() == "Resumed."
    waited = marketrank("wait", analysis_id)
    assert waited.returncode == 0 and "COMPLETED" in waited.stdout
    refine = marketrank("refine", analysis_id)
    assert refine.returncode == 0 and "Refining toward confidence 0.85" in refine.stdout
    assert marketrank("wait", analysis_id).returncode == 0
    cancel = marketrank("cancel", analysis_id)
    assert cancel.returncode == 1 and "already completed" in cancel.stdout


def test_an_llm_analysis_from_the_cli_reports_its_comparisons_and_what_they_cost(llm_server):
    symbols = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "DOGE/USDT", "ADA/USDT"]
    llm_server.reset()
    llm_server.set_strengths({s: float(len(symbols) - i) for i, s in enumerate(symbols)})
    done = marketrank("start", "--strategy", "llm", "--prompt", "cli llm case",
                      "--symbols", ",".join(symbols), "--top", "2", "--target", "0.9",
                      "--owner", "cli-llm", "--wait", **_llm_env(llm_server))
    assert done.returncode == 0, done.stderr
    analysis_id = done.stdout.splitlines()[0]
    calls = llm_server.calls
    assert f"llm judge: {calls} comparisons · {calls} LLM calls" in done.stdout
    assert "P(exactly the top 2)" in done.stdout
    table = done.stdout.split("rank  symbol")[1].strip().splitlines()[1:]
    assert {row.split()[1] for row in table} == set(symbols[:2])
    document = json.loads(marketrank("status", analysis_id, "--json").stdout)
    assert document["stats"]["calls"] == document["stats"]["comparisons"] == calls
    assert 0 <= document["p_exact"] <= 1


def _llm_env(llm_server) -> dict[str, str]:
    """The CLI checks that an LLM is configured before it enqueues an llm analysis."""
    return {"OPENAI_BASE_URL": llm_server.base_url, "OPENAI_API_KEY": "sk-test",
            "OPENAI_MODEL": "judge-small"}


@pytest.mark.parametrize("args, message", [
    (["start", "--symbols", "BTC/USDT,NOPE/USDT"], "error: unknown symbol NOPE/USDT"),
    (["start", "--timeframe", "3m"], "error: unknown timeframe '3m'"),
    (["start", "--symbols", "BTC/USDT,ETH/USDT", "--top", "5"], "error: top 5 is larger than the 2 markets"),
    (["start", "--markets", "1000"], "error: 1000 markets is too many"),
    (["start", "--symbols", ""], "error: name at least two markets"),
    (["status", "zzzzzzzzzz"], "error: no analysis 'zzzzzzzzzz'"),
    (["pause", "../../etc"], "error: no analysis"),
])
def test_bad_input_gets_a_one_line_error_and_writes_nothing(runtime, args, message):
    before = redis_snapshot(runtime.redis)
    done = marketrank(*args)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and message in done.stderr
    assert redis_snapshot(runtime.redis) == before
