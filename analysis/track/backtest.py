"""`backtest`: a trader's replay request, checked (one-line InvalidConfig for anything wrong), run
over a data source's stored candles, and evaluated. What every front calls for a replay.

Stored candles are a csv:<dir> folder, the demo series, or for a live `ccxt:<exchange>` source the
candles its shared candle cache in Redis already holds (cache_reader.py): never the exchange.
"""

from dataclasses import dataclass
from datetime import datetime, timezone

from analysis.errors import InvalidConfig, quoted
from analysis.markets.base import TIMEFRAMES, MarketDataProvider, window_problem
from analysis.markets.cache_reader import CacheReader
from analysis.markets.candle_cache import CandleCache
from analysis.markets.indicators import WARMUP_CANDLES
from analysis.markets.registry import provider_from_spec
from analysis.schedules.model import parse_every
from analysis.settings import Settings
from analysis.track.evaluate import Evaluation, evaluate
from analysis.track.replay import LLM_REFUSAL, ReplayPlan, replay_records
from analysis.track.returns import closes_of
from analysis.trader_text import normalize_symbol

MAX_HORIZON = 1000
STORED_CANDLES = 100_000  # read every stored candle of a market (a csv file, the demo series)


@dataclass(frozen=True)
class BacktestRun:
    plan: ReplayPlan
    evaluation: Evaluation
    markets_seen: int  # markets with stored candles
    left_out: tuple[tuple[str, str], ...] = ()  # (market, why): too little stored history


def stored_candles(spec: str) -> MarketDataProvider:
    """The provider a replay reads: the source itself, or for a live source with a candle cache
    (ccxt:<exchange>) a reader of what that cache holds, which never asks the exchange."""
    provider = provider_from_spec(spec)
    cache = getattr(provider, "cache", None)
    if isinstance(cache, CandleCache):
        return CacheReader(cache, provider.name, provider.label)
    return provider


def parse_time(text: str | None, name: str) -> int | None:
    """An ISO date or time (UTC when no zone is given) -> ms, or InvalidConfig."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidConfig(
            f"--{name} {quoted(text)} is not an ISO date or time, e.g. 2024-07-01 or 2024-07-01T12:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def parse_horizons(text: str) -> tuple[int, ...]:
    """ "1,4,24" -> (1, 4, 24), or InvalidConfig."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts or not all(p.isdigit() and 1 <= int(p) <= MAX_HORIZON for p in parts):
        raise InvalidConfig(
            f"--horizons {quoted(text)}: give bar counts 1..{MAX_HORIZON} separated by commas, e.g. 1,4,24"
        )
    return tuple(sorted({int(p) for p in parts}))


def make_plan(
    settings: Settings,
    provider: MarketDataProvider,
    *,
    strategy: str,
    timeframe: str,
    markets: int | None,
    symbols: list[str] | None,
    start: str | None,
    end: str | None,
    every: str | None,
    top_k: int | None,
    horizons: str | None,
) -> ReplayPlan:
    """The checked replay request (InvalidConfig with the reason for anything wrong); horizons
    default to TRACK_HORIZONS, what live records are scored at."""
    if strategy == "llm":
        raise InvalidConfig(LLM_REFUSAL)
    if strategy != "score":
        raise InvalidConfig(f"unknown strategy {quoted(strategy)}: only score can be replayed")
    if timeframe not in TIMEFRAMES:
        raise InvalidConfig(f"unknown timeframe {quoted(timeframe)}: use one of {', '.join(TIMEFRAMES)}")
    if provider.remote:
        raise InvalidConfig(
            f"backtest replays stored candles: use a csv:<dir>, demo or "
            f"ccxt:<exchange> (its candle cache) data source, not {provider.name}"
        )
    if markets is not None and symbols is not None:
        raise InvalidConfig("give either --markets or --symbols, not both")
    if markets is not None and not 2 <= markets <= settings.max_markets:
        raise InvalidConfig(f"--markets must be 2..{settings.max_markets}, not {markets}")
    if symbols is not None:
        symbols = list(
            dict.fromkeys(normalize_symbol(s, settings.quote_currency) for s in symbols if s.strip())
        )
        if len(symbols) < 2:
            raise InvalidConfig("name at least two markets with --symbols")
        provider.check_symbols(symbols)
    step_s = TIMEFRAMES[timeframe]
    every_s = parse_every(every, step_s).interval_s if every else step_s
    if every_s == 0:
        raise InvalidConfig("--every takes an interval such as 4h, not a cron line")
    if every_s % step_s:
        raise InvalidConfig(f"--every {quoted(every)} must be a whole number of {timeframe} candles")
    size = markets or (len(symbols) if symbols else None)
    k = settings.default_top_k if top_k is None else top_k
    if k < 1:
        raise InvalidConfig(f"--top must be at least 1, not {k}")
    if size is not None and k >= size:
        raise InvalidConfig(f"--top must be 1..{size - 1} (fewer than the markets ranked), not {k}")
    bars = parse_horizons(horizons) if horizons is not None else tuple(settings.track_horizons)
    plan = ReplayPlan(
        timeframe=timeframe,
        k=k,
        horizons=bars,
        markets=markets,
        symbols=tuple(symbols) if symbols else None,
        start_ms=parse_time(start, "from"),
        end_ms=parse_time(end, "to"),
        every_bars=every_s // step_s,
        window=settings.window_candles,
        views=settings.score_views,
        max_thin=settings.max_thin_share,
        excluded_bases=tuple(settings.excluded_bases),
        source=provider.label,
    )
    if plan.start_ms is not None and plan.end_ms is not None and plan.start_ms > plan.end_ms:
        raise InvalidConfig("--from is after --to")
    return plan


def run_backtest(plan: ReplayPlan, provider: MarketDataProvider) -> BacktestRun:
    """Replay and evaluate over every stored candle of the source."""
    names = list(plan.symbols) if plan.symbols else provider.list_markets(plan.timeframe)
    if not names:
        raise InvalidConfig(no_candles(provider, plan.timeframe))
    candles = {s: provider.candles(s, plan.timeframe, STORED_CANDLES) for s in names}
    # A market with fewer candles than a live analysis needs can never be ranked: left out, said.
    needed = WARMUP_CANDLES + plan.views
    short = {
        s: problem
        for s, frame in candles.items()
        if (problem := window_problem(s, frame, plan.timeframe, needed, max_thin=1.0))
    }
    if plan.symbols and short:
        raise InvalidConfig(next(iter(short.values())))
    candles = {s: frame for s, frame in candles.items() if s not in short}
    if not candles:
        raise InvalidConfig(no_candles(provider, plan.timeframe) + f": {next(iter(short.values()))}")
    if plan.k >= len(candles):
        raise InvalidConfig(
            f"--top must be 1..{len(candles) - 1} (fewer than the {len(candles)} "
            f"stored markets with enough history), not {plan.k}"
        )
    decided = replay_records(candles, plan)
    if not decided:
        raise InvalidConfig(
            "no decision to replay: the range holds no candle close with enough "
            "history before it (a live analysis needs "
            f"{plan.views} + warm-up candles) and enough rankable markets"
        )
    closes = {s: closes_of(frame) for s, frame in candles.items() if len(frame)}
    step_ms = TIMEFRAMES[plan.timeframe] * 1000
    known_until = max(int(c.opens_ms[-1]) + step_ms for c in closes.values())
    evaluation = evaluate(
        [r for r, _ in decided], closes, plan.horizons, known_until, baselines=[b for _, b in decided]
    )
    return BacktestRun(
        plan=plan, evaluation=evaluation, markets_seen=len(closes), left_out=tuple(sorted(short.items()))
    )


def no_candles(provider: MarketDataProvider, timeframe: str) -> str:
    if isinstance(provider, CacheReader):
        return (
            f"the candle cache of {provider.name} holds no {timeframe} candles (a backtest "
            "never asks the exchange: an analysis of that timeframe fills the cache)"
        )
    return f"no stored {timeframe} candles in {provider.name}"
