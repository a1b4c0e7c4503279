"""Test doubles, registered by tests, test workers and benchmarks; never imported by analysis/,
bot/ or tasks/, so a production process refuses their names."""


def register() -> None:
    """Make the doubles' names accepted in this process: the `noop:<steps>` strategy and the
    `faulty:` market-data provider."""
    from tests.doubles import faulty_provider, noop_strategy

    noop_strategy.register()
    faulty_provider.register()
