"""#19 item 14: every `make bench*` and `make chaos` target runs on the settings it is given. A run
takes minutes, so the suite checks what made `make bench` fail: each benchmark the Makefile runs
declares what one of its users asks of the per-user limits (bench/limits.py), derived from its own
constants, and the settings it runs with must clear it."""

import importlib
import re

import pytest

from analysis.settings import Settings
from bench.limits import PerUser
from tests.servers import ROOT

TARGETS = re.compile(r"^(bench[\w-]*|chaos):.*\n((?:\t.*\n)+)", re.M)


def benchmark_modules() -> list[str]:
    """The modules `make bench`, `make bench-*` and `make chaos` run."""
    makefile = (ROOT / "Makefile").read_text()
    return sorted(
        {
            module
            for _, recipe in TARGETS.findall(makefile)
            for module in re.findall(r"-m (bench\.\w+)", recipe)
        }
    )


def test_the_makefile_runs_benchmarks():
    assert {"bench.tap_bench", "bench.chaos", "bench.load_bench"} <= set(benchmark_modules())


@pytest.mark.parametrize("name", benchmark_modules())
def test_each_benchmark_runs_within_the_per_user_limits_of_its_settings(name):
    module = importlib.import_module(name)
    assert hasattr(module, "PER_USER") and hasattr(module, "BENCH_ENV"), (
        f"{name} does not say what it asks of the per-user limits (bench/limits.py)"
    )
    if module.PER_USER is None:
        return
    assert isinstance(module.PER_USER, PerUser)
    settings = Settings(
        **{k.lower(): v for k, v in module.BENCH_ENV.items() if k.lower() in Settings.model_fields}
    )
    assert module.PER_USER.shortfalls(settings) == []


def test_the_tap_benchmark_needed_more_starts_than_the_default_quota():
    """What broke `make bench` on main: a tap trader starts a new analysis each time its card
    completes, more than the default 20 an hour."""
    from bench import tap_bench

    assert tap_bench.PER_USER.shortfalls(Settings()) == [
        f"MAX_STARTS_PER_HOUR=20 < {tap_bench.CARDS_PER_TRADER} starts a user makes"
    ]
