"""`marketrank backtest`: the walk-forward replay of the score strategy over stored candles
(analysis/track/backtest.py), as a table or --json. Reads Redis only for a ccxt:<exchange>
source, whose candle cache it replays (never the exchange)."""

from __future__ import annotations

import argparse
import json

from analysis.markets.cache_reader import CacheReader
from analysis.settings import Settings
from analysis.track.backtest import make_plan, run_backtest, stored_candles
from analysis.track.report import evaluation_json, iso, table


def add_parser(sub: argparse._SubParsersAction) -> None:
    backtest = sub.add_parser(
        "backtest",
        help="replay the score strategy walk-forward over stored "
        "candles: its track record against the baselines",
    )
    backtest.add_argument("--strategy", default="score", help="score (llm is never replayed)")
    backtest.add_argument("--timeframe", default="1h", help="candle size (default 1h)")
    group = backtest.add_mutually_exclusive_group()
    group.add_argument(
        "--markets",
        type=int,
        metavar="N",
        help="the N most traded markets by 24 h quote volume as of each decision "
        "(default: every stored market)",
    )
    group.add_argument("--symbols", help="comma list of markets instead of --markets")
    backtest.add_argument("--from", dest="start", metavar="ISO", help="first decision time (UTC)")
    backtest.add_argument("--to", dest="end", metavar="ISO", help="last decision time (UTC)")
    backtest.add_argument(
        "--every", help="time between decisions, a multiple of the timeframe (default: every candle)"
    )
    backtest.add_argument("--top", type=int, dest="top_k", metavar="K", help="top K (default TOP_K)")
    backtest.add_argument("--horizons", help="bars ahead, comma separated (default TRACK_HORIZONS)")
    backtest.add_argument(
        "--source",
        help="data source spec (default MARKET_DATA), e.g. csv:<dir>, "
        "or ccxt:<exchange> to replay its candle cache (no exchange request)",
    )
    backtest.add_argument("--json", action="store_true", help="records[] and summaries as JSON")


def run(args: argparse.Namespace, settings: Settings) -> int:
    provider = stored_candles(args.source or settings.market_data)
    cached = isinstance(provider, CacheReader)
    symbols = args.symbols.split(",") if args.symbols is not None else None
    plan = make_plan(
        settings,
        provider,
        strategy=args.strategy,
        timeframe=args.timeframe,
        markets=args.markets,
        symbols=symbols,
        start=args.start,
        end=args.end,
        every=args.every,
        top_k=args.top_k,
        horizons=args.horizons,
    )
    done = run_backtest(plan, provider)
    records = done.evaluation.records
    if args.json:
        print(
            json.dumps(
                {
                    "strategy": "score",
                    "timeframe": plan.timeframe,
                    "source": provider.label,
                    "candle_cache": cached,
                    "k": plan.k,
                    "horizons": list(plan.horizons),
                    "left_out": [{"symbol": s, "reason": why} for s, why in done.left_out],
                    **evaluation_json(done.evaluation, plan.horizons),
                }
            )
        )
        return 0
    size = plan.markets or (len(plan.symbols) if plan.symbols else done.markets_seen)
    chosen = "chosen by 24 h quote volume as of each decision" if not plan.symbols else "named"
    where = " (its candle cache; no exchange request)" if cached else ""
    print(
        f"score · {plan.timeframe} · {provider.label}{where}: {len(records)} decisions every "
        f"{plan.every_bars} candle(s) from {iso(records[0].t)} to {iso(records[-1].t)}, "
        f"top {plan.k} of {size} markets ({chosen})"
    )
    for symbol, why in done.left_out:
        print(f"left out {symbol}: {why}")
    print(table(done.evaluation, plan.horizons, plan.k, plan.timeframe))
    return 0
