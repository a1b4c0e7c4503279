"""`make run`: the whole product on this machine.

Starts its own redis-server on REDIS_PORT (data under ./var/, append-only) unless REDIS_URL names a
Redis to use, then the Procfile's processes, runs one demo analysis end to end with a progress
bar, prints its ranking, and keeps the stack up until Ctrl-C or SIGTERM, which stop it in order
(launcher/supervisor.py): bot and beat, then the workers warm (steps in flight finish and commit),
then Flower, then Redis.

With a TELEGRAM_BOT_TOKEN the bot talks to Telegram. Without one, the sandbox (`sandbox/`: a local
Bot API server and a chat page on SANDBOX_PORT) starts first and the real bot runs against it, with
the sandbox's admin as the bot's admin, so the product can be tried in a browser. The sandbox's bot
token (handed to the bot only) and its page's secret (in the printed address) are made per run.

Flower listens on 127.0.0.1 only, refuses any other Host (launcher/flower.py), and asks for a login:
FLOWER_BASIC_AUTH when set, else one made for this run and printed. The HTTP listener (`listener/`:
schedules' exports for freqtrade, Prometheus metrics) runs on EXPORT_PORT, 8090 when that is empty.
"""

import argparse
import os
import secrets
import shlex
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from analysis.redaction import redact, secrets_of
from analysis.service import Actor
from analysis.settings import Settings, get_settings
from cli.main import follow
from launcher.ports import PortProblem, check_export_port, check_flower_port, plan_redis, probe_redis
from launcher.supervisor import Child, StopRequested, Supervisor, stop_requested
from sandbox.access import new_page_secret
from sandbox.cast import SANDBOX_CAST
from sandbox.launch import chat_page_url, new_bot_token, open_sandbox
from sandbox.server import BotApiServer
from wiring import celery_services

ROOT = Path(__file__).resolve().parent.parent
BOTFATHER_HELP = """\
No TELEGRAM_BOT_TOKEN is set, so the bot runs against the local sandbox instead of Telegram.
  To use Telegram: talk to @BotFather, send /newbot, follow the steps, and put the token it gives
  you in .env as TELEGRAM_BOT_TOKEN=... (see .env.example), then `make run` again."""


def say(text: str) -> None:
    print(f"[make run] {text}", flush=True)


# Stop order (lowest first): nothing new is asked of the workers once bot and beat are gone;
# the workers finish their steps while Redis and Flower still run; Redis goes last.
STOP_STAGES = {"bot": 0, "beat": 0, "worker": 2, "watchdog": 2, "flower": 3, "redis": 4}
DEFAULT_STAGE = 1  # other helpers (e.g. a local Telegram server) stop after the bot
FLOWER_USER = "ops"
DEFAULT_EXPORT_PORT = 8090  # make run serves the export listener here when EXPORT_PORT is empty
DEFAULT_METRICS_PORT = 9108  # ... and Prometheus metrics here when METRICS_PORT is empty
# Secrets made for this run (the sandbox's bot token and page secret, Flower's password): masked
# in the log lines the launcher shows, like the settings' own secrets.
RUN_SECRETS: list[str] = []


def metrics_env(settings: Settings) -> str:
    """make run serves Prometheus metrics: METRICS_PORT (9108 when empty) and METRICS_TOKEN (one
    made for this run when empty) for the listener; what to tell the operator, or '' if the port
    is taken (then the listener serves no metrics)."""
    port = settings.metrics_port or DEFAULT_METRICS_PORT
    try:
        check_export_port(port)
    except PortProblem:
        say(f"Prometheus metrics are not served: port {port} is in use; set METRICS_PORT in .env")
        os.environ["METRICS_PORT"] = ""
        return ""
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else ""
    if not token:
        token = secrets.token_urlsafe(18)
        RUN_SECRETS.append(token)
    os.environ.update({"METRICS_PORT": str(port), "METRICS_TOKEN": token})
    return f"Prometheus metrics on http://127.0.0.1:{port}/metrics (bearer {token}), "


def shown_log_tail(child: Child) -> str:
    """The last lines of a child's log, with every secret masked."""
    hidden = sorted(set(secrets_of(get_settings()) + RUN_SECRETS), key=len, reverse=True)
    return redact(child.log_tail(), hidden)


def start_redis(supervisor: Supervisor, port: int, var_dir: Path, maxmemory: str = "512mb") -> None:
    child = supervisor.start(
        "redis",
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(var_dir),
            "--appendonly",
            "yes",
            # noeviction: at the limit a write fails (the step pauses
            # with "storage full") instead of Redis silently dropping
            # keys, control keys and leases among them.
            "--maxmemory",
            maxmemory,
            "--maxmemory-policy",
            "noeviction",
        ],
        log_path=var_dir / "redis.log",
        stage=STOP_STAGES["redis"],
        stop_timeout=30,
    )
    say(f"started redis (pid {child.pid}) on port {port}  (log: {child.log_path})")
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while probe_redis(url) != "redis":
        if child.process.poll() is not None or time.monotonic() > deadline:
            raise PortProblem(
                f"redis-server did not start on port {port} ({child.log_tail(1)}); "
                f"see {child.log_path}; set REDIS_PORT to a free port if it is taken"
            )
        time.sleep(0.1)


def procfile(path: Path = ROOT / "Procfile") -> dict[str, str]:
    entries = {}
    for line in path.read_text().splitlines():
        if ":" in line and not line.lstrip().startswith("#"):
            name, command = line.split(":", 1)
            entries[name.strip()] = command.strip()
    return entries


def start_process(
    supervisor: Supervisor, name: str, command: str, env: dict[str, str], log_dir: Path, settings: Settings
) -> None:
    # A warm stop waits for the steps in flight, which the hard time limit bounds.
    timeout = settings.task_time_limit_s + 15 if name == "worker" else 15
    child = supervisor.start(
        name,
        shlex.split(command),
        env=env,
        cwd=ROOT,
        log_path=log_dir / f"{name}.log",
        stage=STOP_STAGES.get(name, DEFAULT_STAGE),
        stop_timeout=timeout,
    )
    say(f"started {name} (pid {child.pid}): {command}  (log: {child.log_path})")


def wait_for_flower(supervisor: Supervisor, port: int, timeout: float = 20) -> bool:
    """True once Flower answers on its port; False (and its log said) if it exits or hangs."""
    child = next(c for c in supervisor.children if c.name == "flower")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            child.reported = True
            say(
                f"Flower exited (code {child.process.returncode}); last lines of {child.log_path}:\n"
                f"{shown_log_tail(child)}"
            )
            return False
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthcheck", timeout=1).close()
            return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    say(f"Flower did not answer on port {port} within {timeout:.0f} s; see {child.log_path}")
    return False


def wait_for_worker(timeout: float = 60) -> None:
    from tasks.celery_app import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if app.control.ping(timeout=1.0):
            return
    raise SystemExit("the worker did not answer within a minute; see var/worker.log")


def run_demo() -> int:
    settings = get_settings()
    services = celery_services(settings)
    factory, service = services.factory, services.service
    actor = Actor("make-run", is_admin=True)
    config = factory.create_ranking_config()
    gist = service.start(config, actor)
    say(f"demo analysis {gist.id}: {config.summary()} on {config.data_source} data")
    return follow(service, gist.id, actor)


def start_sandbox(port: int) -> tuple[BotApiServer, str]:
    """The started sandbox and its chat page's address (with this run's secret)."""
    token, secret = new_bot_token(), new_page_secret()
    RUN_SECRETS.extend([token, secret])
    try:
        sandbox = open_sandbox(port, token=token, secret=secret)
    except RuntimeError as exc:
        raise PortProblem(
            f"cannot serve the sandbox on 127.0.0.1:{port} ({exc.__cause__}); "
            f"set SANDBOX_PORT to a free port in .env"
        ) from None
    people = ", ".join(f"{p.first_name} ({p.role}, id {p.user_id})" for p in SANDBOX_CAST.people)
    page = chat_page_url(sandbox, secret)
    say(f"no TELEGRAM_BOT_TOKEN: chat with the bot in your browser at {page}")
    say(
        f"  (a local sandbox, not Telegram; people: {people}; the address carries a secret made "
        f"for this run: whoever has it can act as any of them)"
    )
    return sandbox, page


def flower_env(settings: Settings) -> tuple[dict[str, str], str]:
    """Flower's environment under `make run` and how to log in: loopback only (Flower reads
    FLOWER_ADDRESS itself), and the operator's FLOWER_BASIC_AUTH or a login made for this run."""
    env = {"FLOWER_ADDRESS": "127.0.0.1"}
    if settings.flower_basic_auth:
        return env, "log in with FLOWER_BASIC_AUTH"
    password = secrets.token_urlsafe(18)
    RUN_SECRETS.append(password)
    env["FLOWER_BASIC_AUTH"] = f"{FLOWER_USER}:{password}"
    return env, f"user {FLOWER_USER}, password {password}, made for this run"


def sandbox_env(sandbox: BotApiServer) -> dict[str, str]:
    """The bot's settings against the sandbox: its token and URL, its cast as users and admin."""
    return {
        "TELEGRAM_BOT_TOKEN": sandbox.token,
        "TELEGRAM_API_BASE_URL": sandbox.base_url,
        "TELEGRAM_API_FILE_URL": sandbox.base_file_url,
        "ALLOWED_USER_IDS": ",".join(str(p.user_id) for p in SANDBOX_CAST.people),
        "ADMIN_USER_IDS": ",".join(str(i) for i in SANDBOX_CAST.admin_ids),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--once", action="store_true", help="run the demo analysis, then stop")
    args = parser.parse_args(argv)
    settings = get_settings()
    var_dir = Path(os.environ.get("MARKETRANK_VAR_DIR", ROOT / "var"))
    var_dir.mkdir(parents=True, exist_ok=True)
    (ROOT / "var").mkdir(exist_ok=True)
    supervisor = Supervisor(say)
    stop_requested(supervisor)
    sandboxes: list[BotApiServer] = []
    try:
        return run_stack(args, settings, supervisor, var_dir, sandboxes)
    except PortProblem as exc:
        say(f"error: {exc}")
        return 1
    except StopRequested as exc:
        say(f"{exc}: stopping")
        return 0
    finally:
        began = time.monotonic()
        supervisor.stop_all()
        for sandbox in sandboxes:  # after the bot that talks to it
            sandbox.stop()
        say(f"stopped ({time.monotonic() - began:.1f} s)")


def run_stack(
    args: argparse.Namespace,
    settings: Settings,
    supervisor: Supervisor,
    var_dir: Path,
    sandboxes: list[BotApiServer],
) -> int:
    has_token = bool(settings.telegram_bot_token and settings.telegram_bot_token.get_secret_value())
    sandbox, page = (None, "") if has_token or args.once else start_sandbox(settings.sandbox_port)
    if sandbox is not None:
        sandboxes.append(sandbox)
    plan = plan_redis(settings.redis_url, settings.redis_url_explicit, settings.redis_port, var_dir)
    say(plan.note + (f" (data in {var_dir}, append-only)" if plan.start_on_port else ""))
    if plan.start_on_port is not None:
        start_redis(supervisor, plan.start_on_port, var_dir, settings.redis_maxmemory)
    os.environ["REDIS_URL"] = plan.url  # this process (the demo) and its children
    export_port = settings.export_port or DEFAULT_EXPORT_PORT
    os.environ["EXPORT_PORT"] = str(export_port)  # the listener serves it, the bot gives it out
    metrics_url = metrics_env(settings)
    get_settings.cache_clear()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    wanted = ["worker", "watchdog", "beat"]
    if not args.once:
        try:
            check_flower_port(settings.flower_port)
            wanted.append("flower")
        except PortProblem as exc:
            say(f"Flower is not started: {exc}")
        try:
            check_export_port(export_port)
            wanted.append("listener")
        except PortProblem as exc:
            say(f"The export listener is not started: {exc}")
        wanted.append("bot")
        if sandbox is not None:
            print(BOTFATHER_HELP, flush=True)
    commands = procfile()
    flower_extra, flower_login = flower_env(settings)
    for name in wanted:
        extra = sandbox_env(sandbox) if name == "bot" and sandbox is not None else {}
        extra = flower_extra if name == "flower" else extra
        start_process(supervisor, name, commands[name], {**env, **extra}, var_dir, settings)
    flower_up = "flower" in wanted and wait_for_flower(supervisor, settings.flower_port)
    wait_for_worker()
    code = run_demo()
    if args.once:
        return code
    where = f"the chat page on {page} (local sandbox), " if sandbox else ""
    where += f"Flower on http://127.0.0.1:{settings.flower_port} ({flower_login}), " if flower_up else ""
    where += f"the export listener on http://127.0.0.1:{export_port}, " if "listener" in wanted else ""
    where += metrics_url if "listener" in wanted else ""
    say(f"the stack is running: {where}the CLI as .venv/bin/marketrank; Ctrl-C stops everything")
    while True:
        for child in supervisor.newly_exited():
            say(
                f"{child.name} exited (code {child.process.returncode}); last lines of "
                f"{child.log_path}:\n{shown_log_tail(child)}"
            )
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
