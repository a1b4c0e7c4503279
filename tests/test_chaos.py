"""The chaos run's short variant (`python -m bench.chaos --quick`): 20 score analyses over the
real Binance candles on two workers while workers are killed, users storm the buttons, admins
force-resume, Redis restarts and the data source fails; every invariant must hold."""

import time

import pytest

from bench.chaos import ChaosOptions, run_chaos

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]


def test_twenty_analyses_survive_kills_storms_restarts_and_failing_data(shared_data_dir):
    began = time.monotonic()
    report = run_chaos(ChaosOptions.quick(shared_data_dir))
    print(report.summary())
    print(f"chaos test variant: {time.monotonic() - began:.0f} s")
    assert report.violations == [], report.summary()
    counts = report.counts
    # The run was not vacuous: faults of every kind happened and rankings were compared.
    assert counts["analyses"] == 20 and counts["compared"] >= 10
    assert counts["kills"] >= 5 and counts["redis restarts"] == 1
    assert counts["data source faults"] > 0 and counts["commits"] > 200
