"""The registries of data sources and strategies: a production process knows only the real ones
and refuses a test double with the accepted names; tests register their doubles themselves."""

import os
import subprocess
import sys

import pytest

from tests.servers import ROOT

PRODUCTION_PROCESS = """
from analysis.errors import InvalidConfig
from analysis.markets.registry import provider_from_spec
from analysis.ranking.strategies import get_strategy
from tasks.celery_app import app
try:
    provider_from_spec("faulty:0.5:demo")
except InvalidConfig as exc:
    print(exc)
try:
    get_strategy("noop:3")
except ValueError as exc:
    print(exc)
app.loader.import_default_modules()  # what a worker or Flower of this app loads
print(sorted(name for name in app.tasks if name.startswith("marketrank.")))
"""


@pytest.mark.slow
def test_a_production_process_refuses_the_test_doubles_and_has_no_bench_task():
    done = subprocess.run(
        [sys.executable, "-c", PRODUCTION_PROCESS], cwd=ROOT, text=True, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "MARKET_DATA='faulty:0.5:demo' is not a data source: use 'demo' or 'csv:<dir>' or "
        "'ccxt:<exchange id>'",
        "unknown strategy 'noop:3': use one of llm, score",
        "['marketrank.init', 'marketrank.rank_step', 'marketrank.scheduled_run', "
        "'marketrank.track_evaluate', 'marketrank.watchdog']",
    ]


@pytest.mark.slow
def test_the_cli_refuses_a_test_double_as_the_data_source():
    env = {**os.environ, "MARKET_DATA": "faulty:0.5:demo"}
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "markets"],
        cwd=ROOT,
        env=env,
        text=True,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "is not a data source: use 'demo' or 'csv:<dir>' or 'ccxt:<exchange id>'" in (
        done.stdout + done.stderr
    )


def test_tests_register_their_doubles_in_their_own_process():
    from analysis.markets.registry import provider_from_spec
    from analysis.ranking.strategies import get_strategy

    assert provider_from_spec("faulty:0.5:demo").error_rate == 0.5
    assert get_strategy("noop:3").steps == 3
