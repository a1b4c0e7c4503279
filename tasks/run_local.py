"""`make run`: the whole product on this machine.

Starts a local redis-server (data under ./var/, append-only) when REDIS_URL is unreachable, then
the Procfile's processes (bot only with a TELEGRAM_BOT_TOKEN), runs one demo analysis end to end
with a progress bar, prints its ranking, and keeps the stack up until Ctrl-C.
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
from tasks.cli import follow
from tasks.dispatcher import CeleryDispatcher

ROOT = Path(__file__).resolve().parent.parent
BOTFATHER_HELP = """\
No TELEGRAM_BOT_TOKEN is set, so the Telegram bot is not started.
  To get one: open Telegram, talk to @BotFather, send /newbot, follow the steps, and put the
  token it gives you in .env as TELEGRAM_BOT_TOKEN=... (see .env.example), then `make run` again.
  Meanwhile the worker, beat and Flower run, and the CLI works: .venv/bin/marketrank --help"""


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--once", action="store_true", help="run the demo analysis, then stop")
    args = parser.parse_args(argv)
    settings = get_settings()
    var_dir = Path(os.environ.get("MARKETRANK_VAR_DIR", ROOT / "var"))
    var_dir.mkdir(parents=True, exist_ok=True)
    (ROOT / "var").mkdir(exist_ok=True)  # beat's schedule file (Procfile)
    children: list[subprocess.Popen] = []
    if not redis_reachable(settings.redis_url):
        children.append(start_redis(settings.redis_url, var_dir))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    wanted = ["worker", "beat"] + ([] if args.once else ["flower"])
    if settings.telegram_bot_token and not args.once:
        wanted.insert(0, "bot")
    elif not args.once:
        print(BOTFATHER_HELP, flush=True)
    commands = procfile()
    try:
        for name in wanted:
            children.append(start_process(name, commands[name], env, var_dir))
        wait_for_worker()
        code = run_demo()
        if args.once:
            return code
        say("the stack is running: Flower on http://127.0.0.1:5555, "
            "the CLI as .venv/bin/marketrank; Ctrl-C stops everything")
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        stop_all(children)


def stop_all(children: list[subprocess.Popen]) -> None:
    """Warm shutdown, newest first (Redis last): steps in flight finish and commit."""
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
