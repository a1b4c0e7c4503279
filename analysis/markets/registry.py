"""Market-data providers by spec: the provider the `MARKET_DATA` setting names.

The built-in sources are `demo`, `csv:<dir>` and `ccxt:<exchange id>` (live, ccxt_source.py). Other sources
register a prefix with
`register_provider` where they are defined; tests and benchmarks register their doubles this way,
so a production process, which never imports them, refuses their specs.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from analysis.errors import InvalidConfig
from analysis.markets.base import MarketDataProvider


@dataclass(frozen=True)
class _Source:
    usage: str  # how a spec of it is written, for refusals
    build: Callable[[str], MarketDataProvider]  # the spec's argument (after 'prefix:') -> provider
    takes_argument: bool


_SOURCES: dict[str, _Source] = {}


def register_provider(
    prefix: str, build: Callable[[str], MarketDataProvider], *, usage: str, takes_argument: bool = True
) -> None:
    """Make `<prefix>:<argument>` (or the bare `<prefix>` when `takes_argument` is False) a spec."""
    _SOURCES[prefix] = _Source(usage, build, takes_argument)
    provider_from_spec.cache_clear()


def accepted_specs() -> list[str]:
    return [source.usage for source in _SOURCES.values()]


def spec_problem(spec: str) -> str | None:
    """Why `spec` names no registered source ("is not a data source: use ..."), or None."""
    prefix, sep, argument = spec.partition(":")
    source = _SOURCES.get(prefix)
    if source is not None and (bool(sep and argument) if source.takes_argument else not sep):
        return None
    forms = " or ".join(repr(usage) for usage in accepted_specs())
    return f"is not a data source: use {forms}"


@lru_cache(maxsize=16)
def provider_from_spec(spec: str) -> MarketDataProvider:
    """One shared instance per spec (so its candle cache is shared); a spec of no registered
    source is refused with the accepted forms."""
    problem = spec_problem(spec)
    if problem:
        raise InvalidConfig(f"MARKET_DATA={spec!r} {problem}")
    return _SOURCES[spec.partition(":")[0]].build(spec.partition(":")[2])


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


register_provider("demo", _demo, usage="demo", takes_argument=False)
register_provider("csv", _csv, usage="csv:<dir>")
register_provider("ccxt", _ccxt, usage="ccxt:<exchange id>")
