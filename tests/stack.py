"""A private stack for tests and benchmarks: an append-only redis-server, settings for it, a
service over it, and real Celery workers and beat started on demand with the same environment,
with the faults a test or the chaos run injects (SIGKILL, SIGTERM, SIGSTOP, a Redis restart).

Used by tests/test_recovery.py, test_live_data.py, test_schedule_beat.py, test_load.py and by
bench/ (the chaos run, the load benchmark); bench imports tests' harness, never the reverse.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from analysis.engine.runtime import Runtime
from analysis.service import AnalysisService
from analysis.settings import Settings
from tasks.dispatcher import CeleryDispatcher
from tests.doubles import register as register_doubles
from tests.servers import ROOT, RedisServer, Worker

# Protocol timings for runs that must finish in seconds; each is a setting a deployment tunes.
FAST_TIMINGS = {
    "LEASE_MS": "3000",
    "HEARTBEAT_MS": "500",
    "WATCHDOG_INTERVAL_S": "1",
    "WATCHDOG_GRACE_S": "3",
    "WATCHDOG_MAX_ATTEMPTS": "5",
    "STEP_RETRIES": "3",
    "STEP_RETRY_BACKOFF_S": "0.05",
    "VISIBILITY_TIMEOUT_S": "60",
    "TASK_TIME_LIMIT_S": "30",
    "EVENTS_MAXLEN": "1000000",
}
QUIET_ENV = {
    "LOG_LEVEL": "INFO",
    "MARKET_DATA": "demo",
    "OPENAI_API_KEY": "",
    "OPENAI_BASE_URL": "",
    "TELEGRAM_BOT_TOKEN": "",
}


# --- processes ---------------------------------------------------------------------------------
def pool_children(pid: int) -> list[int]:
    """The pool processes of a prefork worker's main process."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(part) for part in text.split()]


class Beat:
    """A real `celery -A tasks beat` process: it sends `marketrank.watchdog` every interval."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env, self.log_dir = env, log_dir
        self.log_path = log_dir / "beat.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> "Beat":
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tasks",
                "beat",
                "-l",
                "info",
                "-s",
                str(self.log_dir / "beat-schedule"),
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while b"beat: Starting" not in self.log_path.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"beat did not start: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.05)
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        if getattr(self, "_log", None):
            self._log.close()


class Stack:
    """A private append-only redis-server, settings for it, a service over it, and real workers
    and beat started on demand with the same environment."""

    def __init__(
        self,
        overrides: dict[str, str],
        *,
        name: str = "stack",
        log_dir: str | Path | None = None,
        appendonly: bool = True,
    ):
        register_doubles()  # the service here names the `faulty:` data source, as the workers do
        self.name = name
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix=f"marketrank-{name}-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        values = {**QUIET_ENV, **overrides, **self._start_redis(appendonly)}
        self.env = {**os.environ, **values}
        self.settings = Settings(
            **{k.lower(): v for k, v in values.items() if k.lower() in Settings.model_fields}
        )
        self.runtime = Runtime(self.settings)
        self.app = _private_celery_app(self.settings)
        self.dispatcher = CeleryDispatcher(self.app)
        self.service = AnalysisService(self.runtime.store, self.dispatcher)
        self.workers: dict[int, Worker] = {}
        self.all_workers: list[Worker] = []
        self.generation: Counter[int] = Counter()
        self.beat: Beat | None = None
        self.watchdog_logs: list[Path] = []
        self._thaws: list[threading.Timer] = []

    def _start_redis(self, appendonly: bool) -> dict[str, str]:
        """Start the stack's Redis; the settings that name it (tests/sentinel_cluster.py: Sentinel)."""
        self.redis_server = RedisServer(appendonly=appendonly).start()
        return {"REDIS_URL": self.redis_server.url}

    # workers
    def start_worker(self, slot: int = 1, *, wait: bool = True) -> Worker:
        self.generation[slot] += 1
        worker = Worker(self.env, f"{self.name}-w{slot}-g{self.generation[slot]}", log_dir=str(self.log_dir))
        self.workers[slot] = worker
        self.all_workers.append(worker)
        return worker.start(wait=wait)

    def kill_worker(self, slot: int) -> None:
        """SIGKILL the worker's main process and its pool at once (a lost machine, an OOM kill)."""
        worker = self.workers.pop(slot, None)
        if worker is not None:
            worker.kill()
            worker._log.close()

    def kill_pool_children(self, slot: int) -> int:
        worker = self.workers.get(slot)
        if worker is None or worker.process.poll() is not None:
            return 0
        children = pool_children(worker.process.pid)
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(children)

    def freeze_worker(self, slot: int, seconds: float) -> bool:
        """SIGSTOP the worker (main and pool) for `seconds`, then SIGCONT: a zombie whose leases
        run out while it sleeps and who wakes up to finish steps that were redone meanwhile."""
        worker = self.workers.get(slot)
        if worker is None or worker.process.poll() is not None:
            return False
        pgid = worker.process.pid
        os.killpg(pgid, signal.SIGSTOP)

        def thaw() -> None:
            try:
                os.killpg(pgid, signal.SIGCONT)
            except ProcessLookupError:  # killed while frozen
                pass

        timer = threading.Timer(seconds, thaw)
        timer.daemon = True
        timer.start()
        self._thaws.append(timer)
        return True

    def stop_worker(self, slot: int, timeout: float = 30) -> None:
        """SIGTERM: warm shutdown, the steps in flight finish and commit."""
        worker = self.workers.pop(slot, None)
        if worker is not None:
            worker.stop(timeout)

    def worker_alive(self, slot: int) -> bool:
        worker = self.workers.get(slot)
        return worker is not None and worker.process.poll() is None

    # beat and redis
    def start_beat(self) -> Beat:
        """Beat and the watchdog's own worker (its queue only, one process), as in the Procfile."""
        from tasks.celery_app import WATCHDOG_QUEUE

        self.watchdog_worker = Worker(
            self.env, f"{self.name}-watchdog", concurrency=1, log_dir=str(self.log_dir), queues=WATCHDOG_QUEUE
        ).start()
        self.watchdog_logs.append(self.watchdog_worker.log_path)
        self.beat = Beat(self.env, self.log_dir).start()
        return self.beat

    def stop_beat(self) -> None:
        if self.beat is not None:
            self.beat.stop()
            self.beat = None
        if getattr(self, "watchdog_worker", None) is not None:
            self.watchdog_worker.stop(10)
            self.watchdog_worker = None

    def restart_redis(self, down_s: float = 1.0) -> tuple[float, float]:
        """Graceful restart (SIGTERM: the append-only file is complete); answers (down, up)."""
        self.redis_server.stop()
        down = time.time()
        time.sleep(down_s)
        self.redis_server.start()
        return down, time.time()

    def logs(self) -> list[Path]:
        """Every worker's log, the watchdog's own workers' included."""
        return [
            path for path in [*(w.log_path for w in self.all_workers), *self.watchdog_logs] if path.exists()
        ]

    def leases(self) -> dict[str, str]:
        """Every lease held now: analysis id -> the attempt holding it."""
        r, prefix = self.runtime.redis, self.runtime.keys.lease("")
        keys = list(r.scan_iter(match=prefix + "*", count=1000))
        values = r.mget(keys) if keys else []
        return {k.decode()[len(prefix) :]: v.decode() for k, v in zip(keys, values) if v}

    def thaw_all(self) -> None:
        """Wake every frozen worker now."""
        for timer in self._thaws:
            if timer.is_alive():
                timer.cancel()
                timer.function()
        self._thaws.clear()

    def close(self, *, keep_logs: bool = False) -> None:
        self.thaw_all()
        self.stop_beat()
        for slot in list(self.workers):
            self.stop_worker(slot, timeout=10)
        try:
            self.app.close()
            self.runtime.redis.close()
        finally:
            self.redis_server.cleanup()
        if not keep_logs:
            shutil.rmtree(self.log_dir, ignore_errors=True)


def _private_celery_app(settings: Settings):
    """A Celery app on this stack's broker that does not become the process's current app."""
    from tasks.celery_app import app as process_app
    from tasks.celery_app import make_celery

    app = make_celery(settings)
    process_app.set_current()
    return app
