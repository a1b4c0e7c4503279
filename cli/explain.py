"""`marketrank explain <id> [SYMBOL] [--json]`: why each market ranks where it does, and what
its data was like (docs/explain.md)."""

from __future__ import annotations

import argparse
import json

from analysis.explain import market_lines, quality_lines, why_lines
from analysis.service import Actor, AnalysisService


def add_parser(sub: argparse._SubParsersAction) -> None:
    explain = sub.add_parser(
        "explain",
        help="why each ranked market ranks where it does, and the "
        "data quality (one market in full with SYMBOL)",
    )
    explain.add_argument("id")
    explain.add_argument("symbol", nargs="?", help="one market of the ranking, e.g. BTC/USDT")
    explain.add_argument("--json", action="store_true")


def run(args: argparse.Namespace, service: AnalysisService, actor: Actor) -> int:
    document = service.explain(args.id, actor, args.symbol)
    if args.json:
        print(json.dumps(document, indent=2))
        return 0
    print(f"analysis {document['id']} ({document['strategy']}): {document['method']}")
    if args.symbol is not None:
        lines = market_lines(document)
    else:
        lines = [line for line in why_lines(service.get(args.id, actor)) if not line.startswith("data:")]
    for line in lines + quality_lines(document):
        print(line)
    return 0
