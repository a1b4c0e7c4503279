"""`marketrank`: the admin and scripting front over the same service as the bot."""

import argparse
import json
import re
import sys
import time
from typing import NoReturn

from analysis.config_factory import RankingConfigFactory
from analysis.engine.runtime import Runtime
from analysis.errors import AnalysisError
from analysis.models import Gist
from analysis.service import Actor, AnalysisService
from analysis.settings import get_settings
from tasks import cli_schedule
from tasks.dispatcher import CeleryDispatcher

CLI_OWNER = "cli"
OWNER_PATTERN = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


class OneLineParser(argparse.ArgumentParser):
    """Usage mistakes end like every other CLI error: one `error: ...` line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        printable = "".join(ch if ch.isprintable() else "?" for ch in message)
        if len(printable) > 300:
            printable = printable[:300] + "…"
        print(f"error: {printable} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def owner_name(text: str) -> str:
    """An owner as the CLI accepts it: the name keys and listings are built from."""
    if not OWNER_PATTERN.match(text):
        raise argparse.ArgumentTypeError("an owner is 1 to 64 letters, digits or . _ @ -")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="marketrank", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start an analysis; prints its id")
    add_start_options(start)
    start.add_argument("--wait", action="store_true", help="follow progress and print the ranking")
    status = sub.add_parser("status", help="show one analysis")
    status.add_argument("id")
    status.add_argument("--json", action="store_true")
    listing = sub.add_parser("list", help="list analyses of an owner")
    listing.add_argument("--owner", type=owner_name, default=CLI_OWNER)
    for name in ("pause", "resume", "refine", "cancel", "force-resume", "wait"):
        sub.add_parser(name, help=f"{name} an analysis").add_argument("id")
    sub.add_parser("stuck", help="analyses that should run but make no progress")
    markets = sub.add_parser("markets", help="candidate markets with their 24 h quote volume")
    markets.add_argument("--timeframe", default="1h")
    markets.add_argument("--limit", type=int, default=100, help="show the N most traded")
    cli_schedule.add_parser(sub, add_start_options)
    return parser


def add_start_options(start: argparse.ArgumentParser) -> None:
    group = start.add_mutually_exclusive_group()
    group.add_argument("--markets", type=int, help="rank the N most traded markets")
    group.add_argument("--symbols", help="comma list, e.g. BTC/USDT,ETH/USDT")
    start.add_argument("--timeframe", default="1h")
    start.add_argument("--top", type=int, dest="top_k")
    start.add_argument("--strategy", default="score")
    start.add_argument("--target", type=float)
    start.add_argument("--prompt", default="")
    start.add_argument("--kind", choices=("rank", "entry", "exit"), default="rank")
    start.add_argument("--owner", type=owner_name, default=CLI_OWNER)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    runtime = Runtime(settings)
    service = AnalysisService(runtime.store, CeleryDispatcher())
    # The CLI is the operators' tool: it may act on any analysis.
    actor = Actor(getattr(args, "owner", CLI_OWNER), is_admin=True)
    try:
        return run_command(args, runtime, service, actor)
    except AnalysisError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def run_command(args: argparse.Namespace, runtime: Runtime, service: AnalysisService,
                actor: Actor) -> int:
    command = args.command
    if command == "start":
        factory = RankingConfigFactory(runtime.settings, runtime.provider)
        config = create_config(factory, args)
        gist = service.start(config, actor)
        print(gist.id)
        if config.notice:
            print(f"note: {config.notice}", file=sys.stderr)
        return follow(service, gist.id, actor) if args.wait else 0
    if command == "schedule":
        return cli_schedule.run(args, runtime, actor)
    if command == "status":
        document = service.status_document(args.id, actor)
        if args.json:
            print(json.dumps(document, indent=2))
        else:
            print(describe(service.get(args.id, actor)))
            if document["schedule"]:
                print(f"  schedule: {document['schedule']}")
            for line in cli_schedule.describe_changes(document["changes"]):
                print(line)
        return 0
    if command == "list":
        for gist in service.list(actor, owner=args.owner):
            print(f"{gist.id}  {gist.status.value:<9} {gist.progress:>4.0%}  {gist.config.summary()}")
        return 0
    if command == "wait":
        return follow(service, args.id, actor)
    if command == "stuck":
        for gist in service.stuck():
            print(f"{gist.id}  {gist.status.value:<9} seq {gist.seq}  {gist.reason or 'no progress'}")
        return 0
    if command == "markets":
        factory = RankingConfigFactory(runtime.settings, runtime.provider)
        volumes = factory.market_volumes(args.timeframe)[: args.limit]
        print(f"{len(volumes)} candidates for markets=N on {runtime.provider.label}, most traded first")
        print(f"{'symbol':<16} {'24h quote volume':>20}")
        for symbol, volume in volumes:
            print(f"{symbol:<16} {volume:>20,.0f}")
        return 0
    action = {"pause": service.pause, "resume": service.resume, "refine": service.refine,
              "cancel": service.cancel, "force-resume": service.force_resume}[command]
    result = action(args.id, actor)
    print(result.message)
    return 0 if result.changed else 1


def create_config(factory: RankingConfigFactory, args: argparse.Namespace):
    symbols = [s for s in args.symbols.split(",")] if args.symbols is not None else None
    common = dict(timeframe=args.timeframe, top_k=args.top_k, target=args.target)
    if args.kind == "entry":
        return factory.create_entry_config(args.prompt, symbols=symbols, markets=args.markets, **common)
    if args.kind == "exit":
        return factory.create_exit_config(symbols or [], args.prompt, **common)
    return factory.create_ranking_config(markets=args.markets, symbols=symbols, strategy=args.strategy,
                                         prompt=args.prompt, **common)


def follow(service: AnalysisService, analysis_id: str, actor: Actor, poll_s: float = 0.2) -> int:
    """A progress bar until the analysis stops running; then the ranking table."""
    last = None
    while True:
        gist = service.get(analysis_id, actor)
        line = progress_line(gist)
        if line != last:
            print("\r" + line, end="", file=sys.stderr, flush=True)
            last = line
        if gist.status.is_final or gist.status.value == "PAUSED":
            print(file=sys.stderr)
            print(describe(gist))
            return 0 if gist.status.value == "COMPLETED" else 1
        time.sleep(poll_s)


def progress_line(gist: Gist, width: int = 30) -> str:
    filled = int(round(gist.progress * width))
    return (f"[{'#' * filled}{'.' * (width - filled)}] {gist.progress:4.0%}  step {max(gist.seq, 0)}  "
            f"{gist.status.value.lower()}  confidence {gist.confidence:.2f}/{gist.target:.2f}")


def describe(gist: Gist) -> str:
    lines = [f"analysis {gist.id}: {gist.status.value}" + (f" ({gist.reason})" if gist.reason else ""),
             f"  {gist.config.summary()} · data: "
             + ("demo  [DEMO DATA: synthetic markets]" if gist.demo else gist.source_label()),
             *([f"  {gist.config.notice}"] if gist.config.notice else []),
             f"  progress {gist.progress:.0%} · step {gist.seq} · confidence {gist.confidence:.2f} "
             f"(target {gist.target:.2f})"]
    if gist.llm_summary():
        lines.append(f"  llm judge: {gist.llm_summary()}")
    if gist.note:
        lines.append(f"  note: {gist.note}")
    if gist.result:
        lines.append(f"  {'rank':>4}  {'symbol':<12} {'score':>8}  {'rsi':>5}  {'adx':>5}")
        for item in gist.result:
            ind = item.indicators
            lines.append(f"  {item.rank:>4}  {item.symbol:<12} {item.score:>8.3f}  "
                         f"{ind.get('rsi_14', float('nan')):>5.1f}  {ind.get('adx_14', float('nan')):>5.1f}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
