"""`make run`: the whole product on this machine.

Starts a local redis-server (data under ./var/, append-only) when REDIS_URL is unreachable, then
the Procfile's processes, runs one demo analysis end to end with a progress bar, prints its
ranking, and keeps the stack up until Ctrl-C.

With a TELEGRAM_BOT_TOKEN the bot talks to Telegram. Without one, the sandbox (`sandbox/`: a local
Bot API server and a chat page on SANDBOX_PORT) starts first and the real bot runs against it, with
the sandbox's admin as the bot's admin, so the product can be tried in a browser.
"""

import argparse
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import redis

from analysis.config_factory import RankingConfigFactory
from analysis.engine.runtime import Runtime
from analysis.service import Actor, AnalysisService
from analysis.settings import get_settings
from sandbox.cast import SANDBOX_CAST
from sandbox.launch import open_sandbox
from sandbox.server import BotApiServer
from tasks.cli import follow
from tasks.dispatcher import CeleryDispatcher

ROOT = Path(__file__).resolve().parent.parent
BOTFATHER_HELP = """\
No TELEGRAM_BOT_TOKEN is set, so the bot runs against the local sandbox instead of Telegram.
  To use Telegram: talk to @BotFather, send /newbot, follow the steps, and put the token it gives
  you in .env as TELEGRAM_BOT_TOKEN=... (see .env.example), then `make run` again."""


def say(text: str) -> None:
    print(f"[make run] {text}", flush=True)


def redis_reachable(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


def start_redis(url: str, var_dir: Path) -> subprocess.Popen:
    port = urlparse(url).port or 6379
    var_dir.mkdir(parents=True, exist_ok=True)
    say(f"no Redis at port {port}: starting redis-server (data in {var_dir}, append-only)")
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                "--dir", str(var_dir), "--appendonly", "yes"],
                               stdout=open(var_dir / "redis.log", "ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while not redis_reachable(url):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"redis-server did not start; see {var_dir / 'redis.log'}")
        time.sleep(0.1)
    return process


def procfile(path: Path = ROOT / "Procfile") -> dict[str, str]:
    entries = {}
    for line in path.read_text().splitlines():
        if ":" in line and not line.lstrip().startswith("#"):
            name, command = line.split(":", 1)
            entries[name.strip()] = command.strip()
    return entries


def start_process(name: str, command: str, env: dict[str, str], log_dir: Path) -> subprocess.Popen:
    log = open(log_dir / f"{name}.log", "ab")
    say(f"starting {name}: {command}  (log: {log_dir / f'{name}.log'})")
    return subprocess.Popen(shlex.split(command), cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def wait_for_worker(timeout: float = 60) -> None:
    from tasks.celery_app import app
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if app.control.ping(timeout=1.0):
            return
    raise SystemExit("the worker did not answer within a minute; see var/worker.log")


def run_demo() -> int:
    settings = get_settings()
    runtime = Runtime(settings)
    factory = RankingConfigFactory(settings, runtime.provider)
    service = AnalysisService(runtime.store, CeleryDispatcher())
    actor = Actor("make-run", is_admin=True)
    config = factory.create_ranking_config()
    gist = service.start(config, actor)
    say(f"demo analysis {gist.id}: {config.summary()} on {config.data_source} data")
    return follow(service, gist.id, actor)


def start_sandbox(port: int) -> BotApiServer:
    try:
        sandbox = open_sandbox(port)
    except RuntimeError as exc:
        raise SystemExit(f"[make run] cannot serve the sandbox on 127.0.0.1:{port} ({exc.__cause__}); "
                         f"set SANDBOX_PORT to a free port in .env") from None
    people = ", ".join(f"{p.first_name} ({p.role}, id {p.user_id})" for p in SANDBOX_CAST.people)
    say(f"no TELEGRAM_BOT_TOKEN: chat with the bot in your browser at {sandbox.url}/")
    say(f"  (a local sandbox, not Telegram; people: {people})")
    return sandbox


def sandbox_env(sandbox: BotApiServer) -> dict[str, str]:
    """The bot's settings against the sandbox: its token and URL, its cast as users and admin."""
    return {"TELEGRAM_BOT_TOKEN": sandbox.token, "TELEGRAM_API_BASE_URL": sandbox.base_url,
            "TELEGRAM_API_FILE_URL": sandbox.base_file_url,
            "ALLOWED_USER_IDS": ",".join(str(p.user_id) for p in SANDBOX_CAST.people),
            "ADMIN_USER_IDS": ",".join(str(i) for i in SANDBOX_CAST.admin_ids)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--once", action="store_true", help="run the demo analysis, then stop")
    args = parser.parse_args(argv)
    settings = get_settings()
    has_token = bool(settings.telegram_bot_token and settings.telegram_bot_token.get_secret_value())
    sandbox = None if has_token or args.once else start_sandbox(settings.sandbox_port)
    var_dir = Path(os.environ.get("MARKETRANK_VAR_DIR", ROOT / "var"))
    var_dir.mkdir(parents=True, exist_ok=True)
    (ROOT / "var").mkdir(exist_ok=True)
    children: list[subprocess.Popen] = []
    if not redis_reachable(settings.redis_url):
        children.append(start_redis(settings.redis_url, var_dir))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    wanted = ["worker", "beat"] + ([] if args.once else ["flower", "bot"])
    if sandbox is not None:
        print(BOTFATHER_HELP, flush=True)
    commands = procfile()
    try:
        for name in wanted:
            extra = sandbox_env(sandbox) if name == "bot" and sandbox is not None else {}
            children.append(start_process(name, commands[name], {**env, **extra}, var_dir))
        wait_for_worker()
        code = run_demo()
        if args.once:
            return code
        where = f"the chat page on {sandbox.url}/ (local sandbox), " if sandbox else ""
        say(f"the stack is running: {where}Flower on http://127.0.0.1:5555, "
            "the CLI as .venv/bin/marketrank; Ctrl-C stops everything")
        # sigwait only takes signals that are blocked; unblocked, SIGTERM would kill this process
        # and orphan the workers (the children, started above, keep their own mask).
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        stop_all(children)
        if sandbox is not None:
            sandbox.stop()


def stop_all(children: list[subprocess.Popen]) -> None:
    """Warm shutdown, newest first (Redis last): steps in flight finish and commit. A second
    Ctrl-C (or a process-group SIGINT) must not cut the shutdown short and orphan the workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for process in reversed(children):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in reversed(children):
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


if __name__ == "__main__":
    sys.exit(main())
