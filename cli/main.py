"""`marketrank`: the admin and scripting front over the same service as the bot."""

import argparse
import json
import os
import re
import sys
import time
from typing import NoReturn

import redis
from redis.sentinel import MasterNotFoundError

from analysis.config_factory import PUBLIC_STRATEGIES, RankingConfigFactory
from analysis.errors import AnalysisError, InvalidConfig, first_line
from analysis.markets.base import TIMEFRAMES
from analysis.models import Gist
from analysis.redaction import url_without_password
from analysis.service import Actor, AnalysisService
from analysis.settings import Settings, get_settings
from cli import explain as cli_explain
from cli import maintenance as cli_maintenance
from cli import schedule as cli_schedule
from cli import settings as cli_settings
from cli import track as cli_track
from cli import track_view as cli_track_view
from wiring import Services, celery_services, redis_client

CLI_OWNER = "cli"
# Exit codes, for scripts (also in --help and docs/cli.md).
OK, NOT_DONE, BAD_INPUT, NO_REDIS, INTERRUPTED = 0, 1, 2, 3, 130
EXIT_CODES = """\
exit codes:
  0  done, or already as asked ("Already paused.", "Already running.")
  1  nothing done because it cannot be (e.g. cancel a completed analysis), or the analysis
     waited for ended other than COMPLETED (paused, failed, cancelled)
  2  bad input (unknown id, option or value, or a bad setting): one `error: ...` line
  3  Redis cannot be reached: one `error: ...` line naming the URL tried
  130 interrupted (Ctrl-C)
A reader that stops early (`| head`) is not an error."""
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


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"give a whole number of at least 1, not {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = OneLineParser(
        prog="marketrank", description=__doc__, epilog=EXIT_CODES, formatter_class=formatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser(
        "start", help="start an analysis; prints its id", epilog=EXIT_CODES, formatter_class=formatter
    )
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
    health = sub.add_parser(
        "health",
        help="healthy / warning / critical with the reasons; exit "
        "code 0 / 1 / 2 (for a cron or a container probe)",
    )
    health.add_argument("--json", action="store_true")
    markets = sub.add_parser("markets", help="candidate markets with their 24 h quote volume")
    markets.add_argument("--timeframe", default="1h", help=f"{', '.join(TIMEFRAMES)} (default 1h)")
    markets.add_argument(
        "--limit", type=positive_int, default=100, help="show the N most traded (default 100)"
    )
    cli_schedule.add_parser(sub, add_start_options)
    cli_track.add_parser(sub)
    cli_explain.add_parser(sub)
    cli_track_view.add_parser(sub)
    cli_settings.add_parser(sub)
    cli_maintenance.add_parser(sub)
    return parser


def add_start_options(start: argparse.ArgumentParser) -> None:
    settings = get_settings()
    group = start.add_mutually_exclusive_group()
    group.add_argument(
        "--markets",
        type=int,
        metavar="N",
        help=f"rank the N most traded markets, 2..{settings.max_markets} "
        f"(default {settings.default_markets})",
    )
    group.add_argument(
        "--symbols", help="comma list instead of --markets, e.g. BTC/USDT,ETH/USDT (see `marketrank markets`)"
    )
    start.add_argument("--timeframe", default="1h", help=f"candle size: {', '.join(TIMEFRAMES)} (default 1h)")
    start.add_argument(
        "--top",
        type=int,
        dest="top_k",
        metavar="K",
        help=f"report the top K, 1..number of markets (default {settings.default_top_k})",
    )
    start.add_argument(
        "--strategy",
        default="score",
        help=f"{' or '.join(PUBLIC_STRATEGIES)} (default score; llm needs OPENAI_BASE_URL or OPENAI_API_KEY)",
    )
    start.add_argument(
        "--target", type=float, help=f"confidence to reach, 0.5..0.99 (default {settings.default_target})"
    )
    start.add_argument(
        "--prompt",
        default="",
        help=f"the trader's question for the llm judge, at most "
        f"{settings.max_prompt_chars} characters (default none)",
    )
    start.add_argument(
        "--kind", choices=("rank", "entry", "exit"), default="rank", help="rank, entry or exit (default rank)"
    )
    start.add_argument(
        "--owner", type=owner_name, default=CLI_OWNER, help=f"whose analysis it is (default {CLI_OWNER})"
    )


# Listing markets reads no analysis; only a live exchange's candle cache lives in Redis.
NEEDS_NO_REDIS = {"markets", "backtest"}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    services = celery_services(settings)
    # The CLI is the operators' tool: it may act on any analysis.
    actor = Actor(getattr(args, "owner", CLI_OWNER), is_admin=True)
    try:
        if args.command == "health":
            return print_health(args, services)
        source = getattr(args, "source", None) or settings.market_data
        if args.command not in NEEDS_NO_REDIS or source.startswith("ccxt:"):
            check_redis(settings)
        code = run_command(args, services, actor)
        sys.stdout.flush()  # a closed pipe fails here, inside the try, not at interpreter exit
        return code
    except AnalysisError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return BAD_INPUT
    except RedisUnreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return NO_REDIS
    except KeyboardInterrupt:
        return INTERRUPTED
    except BrokenPipeError:
        # The reader stopped early (`| head`): what it read is what it wanted. Python would
        # report the failed flush of stdout at exit, so stdout goes to /dev/null first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK


def print_health(args: argparse.Namespace, services: Services) -> int:
    from analysis.health import describe, unreachable

    settings = services.runtime.settings
    try:
        check_redis(settings)
        health = services.health()
    except RedisUnreachable as exc:
        health = unreachable(url_without_password(settings.redis_url), exc.reason)
    print(json.dumps(health.to_dict(), indent=2) if args.json else describe(health))
    sys.stdout.flush()
    return health.exit_code


class RedisUnreachable(Exception):
    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def check_redis(settings: Settings, timeout_s: float = 1.0) -> None:
    """Fail in about a second, with what to do, rather than retrying for half a minute."""
    url = settings.redis_url
    client = redis_client(settings, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    if settings.redis_sentinels:  # what is named is the sentinels' primary, not REDIS_URL's host
        url = f"redis://{settings.redis_sentinel_master}@sentinels({settings.redis_sentinels})"
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        reason = first_line(exc)
        if isinstance(exc, MasterNotFoundError):  # its text carries the whole client's repr
            reason = f"no sentinel names a primary {settings.redis_sentinel_master!r}"
        raise RedisUnreachable(
            f"cannot reach Redis at {url_without_password(url)} ({reason}); start the stack with "
            "`make run`, or "
            f"set REDIS_URL to a running Redis",
            reason,
        ) from None
    finally:
        client.close()


def run_command(args: argparse.Namespace, services: Services, actor: Actor) -> int:
    command, service, factory = args.command, services.service, services.factory
    if command == "start":
        config = create_config(factory, args)
        gist = service.start(config, actor)
        print(gist.id)
        if config.notice:
            print(f"note: {config.notice}", file=sys.stderr)
        return follow(service, gist.id, actor) if args.wait else 0
    if command == "schedule":
        return cli_schedule.run(args, services.schedules, actor)
    if command == "backtest":
        return cli_track.run(args, services.runtime.settings)
    if command == "explain":
        return cli_explain.run(args, service, actor)
    if command == "track":
        return cli_track_view.run(args, services.track(), services.runtime.settings)
    if command == "settings":
        return cli_settings.run(args, services.user_settings(), actor)
    if command == "maintenance":
        return cli_maintenance.run(args, service, actor)
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
        volumes = factory.market_volumes(args.timeframe)[: args.limit]
        print(f"{len(volumes)} candidates for markets=N on {factory.provider.label}, most traded first")
        print(f"{'symbol':<16} {'24h quote volume':>20}")
        for symbol, volume in volumes:
            print(f"{symbol:<16} {volume:>20,.0f}")
        return 0
    action = {
        "pause": service.pause,
        "resume": service.resume,
        "refine": service.refine,
        "cancel": service.cancel,
        "force-resume": service.force_resume,
    }[command]
    result = action(args.id, actor)
    print(result.message)
    return OK if result.changed or result.already else NOT_DONE


def create_config(factory: RankingConfigFactory, args: argparse.Namespace):
    symbols = [s for s in args.symbols.split(",")] if args.symbols is not None else None
    common = dict(timeframe=args.timeframe, top_k=args.top_k, target=args.target)
    if args.kind != "rank" and args.strategy != "score":
        raise InvalidConfig(
            f"--kind {args.kind} picks its strategy itself (llm with a judge configured); "
            "leave out --strategy"
        )
    if args.kind == "exit" and (args.markets is not None or symbols is None):
        raise InvalidConfig(
            "--kind exit ranks the markets you hold: name them with --symbols, e.g. "
            "--symbols BTC/USDT,ETH/USDT"
        )
    chosen = dict(
        markets=args.markets,
        symbols=symbols,
        prompt=args.prompt,
        strategy=args.strategy if args.kind == "rank" else None,
        **common,
    )
    return factory.create(args.kind, **{name: value for name, value in chosen.items() if value is not None})


def follow(service: AnalysisService, analysis_id: str, actor: Actor, poll_s: float = 0.2) -> int:
    """Progress until the analysis stops running, then the ranking table. On a terminal one bar
    redrawn in place; otherwise (a file, a pipe) one plain line per change."""
    last = None
    on_terminal = sys.stderr.isatty()
    while True:
        gist = service.get(analysis_id, actor)
        line = progress_line(gist)
        if line != last:
            if on_terminal:
                print("\r" + line, end="", file=sys.stderr, flush=True)
            else:
                print(line, file=sys.stderr, flush=True)
            last = line
        if gist.status.is_final or gist.status.value == "PAUSED":
            if on_terminal:
                print(file=sys.stderr)
            print(describe(gist))
            return OK if gist.status.value == "COMPLETED" else NOT_DONE
        time.sleep(poll_s)


def progress_line(gist: Gist, width: int = 30) -> str:
    filled = int(round(gist.progress * width))
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {gist.progress:4.0%}  step {max(gist.seq, 0)}  "
        f"{gist.status.value.lower()}  confidence {gist.confidence:.2f}/{gist.target:.2f}"
    )


def describe(gist: Gist) -> str:
    lines = [
        f"analysis {gist.id}: {gist.status.value}" + (f" ({gist.reason})" if gist.reason else ""),
        f"  {gist.config.summary()} · data: "
        + ("demo  [DEMO DATA: synthetic markets]" if gist.demo else gist.source_label()),
        *([f"  {gist.config.notice}"] if gist.config.notice else []),
        f"  progress {gist.progress:.0%} · step {gist.seq} · confidence {gist.confidence:.2f} "
        f"(target {gist.target:.2f})",
    ]
    if gist.llm_summary():
        lines.append(f"  llm judge: {gist.llm_summary()}")
    if gist.note:
        lines.append(f"  note: {gist.note}")
    if gist.result:
        lines.append(f"  {'rank':>4}  {'symbol':<12} {'score':>8}  {'rsi':>5}  {'adx':>5}")
        for item in gist.result:
            ind = item.indicators
            lines.append(
                f"  {item.rank:>4}  {item.symbol:<12} {item.score:>8.3f}  "
                f"{ind.get('rsi_14', float('nan')):>5.1f}  {ind.get('adx_14', float('nan')):>5.1f}"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
