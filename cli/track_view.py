"""`marketrank track [strategy] [timeframe] [--json]`: the track record of live pick records
(the same table and figures as the bot's /track; docs/cli.md lists the JSON fields)."""

from __future__ import annotations

import argparse
import json

from analysis.settings import Settings
from analysis.track.service import STRATEGIES, TrackService, parse_filters
from analysis.track.table import table_text


def add_parser(sub: argparse._SubParsersAction) -> None:
    track = sub.add_parser(
        "track",
        help="does the top K beat the universe? the track record of "
        "every completed analysis, per strategy, timeframe, source",
    )
    track.add_argument(
        "filters",
        nargs="*",
        metavar="strategy|timeframe",
        help=f"only this strategy ({', '.join(STRATEGIES)}) and/or timeframe",
    )
    track.add_argument("--json", action="store_true", help="one JSON document (docs/cli.md)")


def run(args: argparse.Namespace, service: TrackService, s: Settings) -> int:
    strategy, timeframe = parse_filters(args.filters)
    tracks = service.tracks(strategy, timeframe)
    if args.json:
        print(
            json.dumps(
                {
                    "horizons": s.track_horizons,
                    "retention_days": s.track_retention_days,
                    "groups": [t.to_dict() for t in tracks],
                },
                indent=2,
            )
        )
        return 0
    if not tracks:
        print(
            "no pick records yet: every completed analysis leaves one, scored once its horizons have closed"
        )
        return 0
    print("\n\n".join(table_text(t) for t in tracks))
    return 0
