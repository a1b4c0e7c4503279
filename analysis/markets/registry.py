"""Market-data providers by spec: the provider the `MARKET_DATA` setting names.

The built-in sources are `demo`, `csv:<dir>` and `ccxt:<exchange id>` (live, ccxt_source.py); the
forms of their specs are in sources.py. Other sources register a prefix with `register_provider`
where they are defined; tests and benchmarks register their doubles this way, so a production
process, which never imports them, refuses their specs.
"""

from collections.abc import Callable
from functools import lru_cache

from analysis.errors import InvalidConfig
from analysis.markets.base import MarketDataProvider
from analysis.markets.sources import declare_source, spec_problem

# The spec's argument (after 'prefix:') -> provider, by prefix.
_BUILDERS: dict[str, Callable[[str], MarketDataProvider]] = {}


def register_provider(
    prefix: str, build: Callable[[str], MarketDataProvider], *, usage: str, takes_argument: bool = True
) -> None:
    """Make `<prefix>:<argument>` (or the bare `<prefix>` when `takes_argument` is False) a spec."""
    declare_source(prefix, usage, takes_argument)
    _BUILDERS[prefix] = build
    provider_from_spec.cache_clear()


@lru_cache(maxsize=16)
def provider_from_spec(spec: str) -> MarketDataProvider:
    """One shared instance per spec (so its candle cache is shared); a spec of no registered
    source is refused with the accepted forms."""
    problem = spec_problem(spec)
    if problem:
        raise InvalidConfig(f"MARKET_DATA={spec!r} {problem}")
    return _BUILDERS[spec.partition(":")[0]](spec.partition(":")[2])


def _demo(_: str) -> MarketDataProvider:
    from analysis.markets.demo import DemoProvider

    return DemoProvider()


def _csv(directory: str) -> MarketDataProvider:
    from analysis.markets.csv_dir import CsvDirProvider

    return CsvDirProvider(directory)


def _ccxt(exchange_id: str) -> MarketDataProvider:
    # Live data needs the process's settings (Redis for the shared cache, CCXT_API_URL...).
    from analysis.markets.ccxt_source import CcxtProvider
    from analysis.settings import get_settings

    return CcxtProvider(exchange_id, get_settings())


_BUILDERS.update(demo=_demo, csv=_csv, ccxt=_ccxt)  # how their specs are written: sources.py
