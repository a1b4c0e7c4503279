"""`marketrank schedule add|list|remove|resume`: recurring analyses from the command line."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from typing import Any

from analysis.export import FORMATS, ExportService
from analysis.schedules.service import ScheduleService
from analysis.service import Actor

NOTIFY_HELP = "always: post every run to the chat; changes: only runs whose top K changed"


def add_parser(sub: argparse._SubParsersAction, add_start_options) -> None:
    schedule = sub.add_parser("schedule", help="recurring analyses (times in UTC)")
    actions = schedule.add_subparsers(dest="schedule_command", required=True)
    add = actions.add_parser("add", help="add a schedule; prints its id on the last line")
    add.add_argument(
        "--every",
        required=True,
        help="15m, 1h, 4h, 12h, 1d (any Ns/Nm/Nh/Nd allowed by SCHEDULE_MIN_INTERVAL_S) "
        'or "cron=0 */4 * * *" (UTC)',
    )
    add.add_argument("--notify", choices=("always", "changes"), default="always", help=NOTIFY_HELP)
    add.add_argument(
        "--tz", default="", help="the IANA zone a cron line is read in, e.g. Europe/Berlin (default UTC)"
    )
    add_start_options(add)
    listing = actions.add_parser("list", help="schedules: id, every, owner, next run, runs, last run")
    listing.add_argument("--owner", help="only this owner's schedules (default: everyone's)")
    listing.add_argument("--json", action="store_true")
    actions.add_parser("remove", help="remove a schedule").add_argument("id")
    actions.add_parser(
        "resume",
        help="resume a paused schedule (exit 0 if it already is active, 1 if its owner is not allowed)",
    ).add_argument("id")
    export = actions.add_parser(
        "export",
        help="hand the schedule's latest top K to freqtrade: prints "
        "the URL, then the token (shown once; a new one replaces the old)",
    )
    export.add_argument("id")
    export.add_argument(
        "--format",
        choices=tuple(FORMATS),
        default="freqtrade",
        help="freqtrade: spot pairs (BTC/USDT); freqtrade-futures: BTC/USDT:USDT",
    )
    export.add_argument("--off", action="store_true", help="revoke: the token gets 401 from now on")


def start_options(args: argparse.Namespace) -> dict[str, Any]:
    """`start`'s options as the config factory's arguments (what a schedule keeps)."""
    symbols = args.symbols.split(",") if args.symbols is not None else None
    return {
        "kind": args.kind,
        "markets": args.markets,
        "symbols": symbols,
        "timeframe": args.timeframe,
        "top_k": args.top_k,
        "strategy": None if args.kind != "rank" else args.strategy,
        "target": args.target,
        "prompt": args.prompt or None,
    }


def when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if ts else "-"


def run(args: argparse.Namespace, service: ScheduleService, actor: Actor) -> int:
    command = args.schedule_command
    if command == "add":
        schedule = service.add(args.every, start_options(args), actor, notify=args.notify, zone=args.tz)
        print(f"every {schedule.every.text} ({schedule.every.zone or 'UTC'}): {schedule.summary}")
        print(schedule.id)
        return 0
    if command == "remove":
        schedule = service.remove(args.id, actor)
        print(f"Removed schedule {schedule.id} (every {schedule.every.text}, {schedule.runs} runs).")
        return 0
    if command == "export":
        return export(args, service, actor)
    if command == "resume":
        result = service.resume(args.id, actor)
        if not (result.resumed or result.already):
            print(result.message)
            return 1
        print(
            f"{result.message} Next run: "
            f"{when(service.next_runs([result.schedule]).get(result.schedule.id))}."
        )
        return 0
    schedules = service.list(actor, everyone=args.owner is None, owner=args.owner)
    next_runs = service.next_runs(schedules)
    if args.json:
        print(json.dumps([s.to_jsonable(next_runs.get(s.id)) for s in schedules], indent=2))
        return 0
    print(f"{'id':<8}  {'every':<18} {'owner':<12} {'next run':<23} {'runs':>4}  last analysis")
    for s in schedules:
        next_run = when(next_runs.get(s.id)) if s.state == "active" else f"paused: {s.reason}"
        print(
            f"{s.id:<8}  {s.every.text:<18} {s.owner:<12} {next_run:<23} {s.runs:>4}  "
            f"{s.last_analysis or '-'}"
        )
    return 0


def export(args: argparse.Namespace, service, actor: Actor) -> int:
    exports = ExportService(service)
    if args.off:
        schedule = exports.revoke(args.id, actor)
        print(f"Export of schedule {schedule.id} is off: its token gets 401 from now on.")
        return 0
    issued = exports.enable(args.id, actor, args.format)
    print(
        f"Export of schedule {issued.schedule.id} for {issued.schedule.export} "
        f"(freqtrade: RemotePairList, pairlist_url and bearer_token; docs/export.md)."
    )
    print(f"url: {issued.url}")
    print(f"token (shown once): {issued.token}")
    return 0


def describe_changes(changes: dict | None) -> list[str]:
    """Lines for `status`: what changed since the schedule's previous run."""
    if changes is None:
        return []
    if not changes["against"]:
        return ["  changes: none (the schedule's first run)"]
    lines = [f"  changes since {changes['against']}:"]
    if not (changes["entered"] or changes["left"] or changes["moved"]):
        lines.append("    top unchanged")
    if changes["entered"]:
        lines.append("    entered: " + ", ".join(changes["entered"]))
    if changes["left"]:
        lines.append("    left: " + ", ".join(changes["left"]))
    for symbol, move in changes["moved"].items():
        lines.append(f"    {symbol}: {move['old']} -> {move['new']}")
    return lines
