"""The chaos run's short variant, run as an operator runs it (`python -m bench.chaos --quick`):
20 score analyses over the real Binance candles on two workers while workers are killed, users
storm the buttons, admins force-resume, the Redis primary is SIGKILLed (Sentinel promotes its
replica) and the data source fails; every invariant must hold. A subprocess, so tests never import
bench (bench imports tests' harness)."""

import json
import subprocess
import sys
import time

import pytest

from tests.servers import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]


def test_twenty_analyses_survive_kills_storms_the_primarys_death_and_failing_data(shared_data_dir, tmp_path):
    began = time.monotonic()
    report_path = tmp_path / "chaos.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.chaos",
            "--quick",
            "--data-dir",
            str(shared_data_dir),
            "--json",
            str(report_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    print(run.stdout)
    print(f"chaos test variant: {time.monotonic() - began:.0f} s")
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert report["violations"] == [], run.stdout[-5000:]
    counts = report["counts"]
    # The run was not vacuous: faults of every kind happened and rankings were compared.
    assert counts["analyses"] == 20 and counts["compared"] >= 10
    assert counts["kills"] >= 5 and counts["primary kills"] == 1
    # The primary died with commits its replica had not received (it had been cut off): they
    # are counted and named, and were each run again once (no violation above), or their
    # analysis was cancelled first (a CI run once lost only such a commit, counted 0 before).
    assert "primary SIGKILL 1 (port " in run.stdout and counts["lost commits"] >= 1
    assert counts["data source faults"] > 0 and counts["commits"] > 200


def test_a_commit_lost_in_the_switch_is_counted_even_when_its_analysis_ended_before_a_rerun():
    """The chaos report's count of commits the dead primary took with it: run again on the new
    primary (two commits of one sequence, a switch between them), or never (its analysis was
    cancelled first: accepted once while the replica was cut off, missing from the final
    history). A commit the final history holds, or accepted outside the cut-off, was not lost."""
    from bench.chaos_failover import Failover, lost_commits

    # The replica cut off at 100.0, the primary killed at 100.6, the replica promoted at 102.6.
    switch = Failover(0.6, True, 100.6, 102.6, 108.0, 6379, 6380)
    commits = {
        ("rerun", 7): [100.3, 104.0],  # lost, committed again on the new primary
        ("cancelled", 3): [100.4],  # lost, its analysis cancelled before a re-run
        ("kept", 5): [100.2],  # accepted in the window but on the new primary: not lost
        ("earlier", 2): [99.5],  # before the cut-off: replicated
    }
    final = {"rerun": {7}, "cancelled": {1, 2}, "kept": {5}, "earlier": {1}}
    lost, violations = lost_commits(commits, [switch], final)
    assert (lost, violations) == ({"cancelled": [3], "rerun": [7]}, [])
