"""Real servers for tests: a redis-server on a free port and Celery worker processes."""

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_PORTS = random.SystemRandom()  # no test's seed makes two processes pick the same ports


def free_port() -> int:
    """A loopback port free now, chosen below the kernel's ephemeral range: a port that bind(0)
    hands out is also one an outgoing connection of any test may take as its local port before
    the server binds it (the likely reason a sentinel cluster once did not form in CI)."""
    low, high = 20000, _ephemeral_low() - 1
    for _ in range(200):
        port = _PORTS.randint(low, high)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # a crowded range: whatever the kernel gives
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_own_redis(process: subprocess.Popen, port: int, timeout: float = 10) -> bool:
    """Wait until the redis-server (or sentinel) `process` answers on `port`. False when it
    exited first (the port was taken between the choice and the bind); an answer from another
    process on that port is not taken for ours."""
    client = redis.Redis(port=port, socket_timeout=1)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            try:
                if int(client.info("server")["process_id"]) == process.pid:
                    return True
            except redis.RedisError:
                pass
            time.sleep(0.02)
    finally:
        client.close()
    process.kill()  # never leave a server that does not answer behind
    process.wait(10)
    raise RuntimeError(f"redis-server on port {port} did not answer within {timeout}s")


def start_on_free_port(spawn, port: int, movable: bool, tries: int = 5) -> tuple[subprocess.Popen, int]:
    """spawn(port) -> the server's process, started on `port`; if that port was taken meanwhile
    and the server is `movable`, on another free port, until one holds. A restart is not movable
    (clients reconnect to its port): losing the port is then an error."""
    for _ in range(tries if movable else 1):
        process = spawn(port)
        if wait_own_redis(process, port):
            return process, port
        failed, port = port, free_port()
    raise RuntimeError(f"could not start a redis-server: port {failed} was taken")


class RedisServer:
    """A private redis-server: its own port and folder, append-only persistence optional."""

    def __init__(self, appendonly: bool = False, maxmemory: str | None = None, args: tuple[str, ...] = ()):
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed: run `make test`, which installs it")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="marketrank-redis-")
        self.appendonly = appendonly
        # With a limit, noeviction as `make run` configures it: a write past it fails.
        self.limits = ["--maxmemory", maxmemory, "--maxmemory-policy", "noeviction"] if maxmemory else []
        self.args = list(args)  # more redis-server options (a replica's --replicaof)
        self.process: subprocess.Popen | None = None
        self._started = False  # once started, its port is what clients know

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        """Start it; the first start may move to another free port if its port was taken in the
        meantime, a restart keeps its port (clients reconnect to it)."""
        self.process, self.port = start_on_free_port(self._spawn, self.port, movable=not self._started)
        self._started = True
        return self

    def _spawn(self, port: int) -> subprocess.Popen:
        return subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                self.dir,
                "--save",
                "",
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--appendfsync",
                "always",
                *self.limits,
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Worker:
    """A real `celery -A <app> worker` process (prefork) with the test environment; the app is the
    production one with the test doubles registered (tests/worker_app.py) unless told otherwise."""

    def __init__(
        self,
        env: dict[str, str],
        name: str,
        concurrency: int = 2,
        log_dir: str | None = None,
        app: str = "tests.worker_app",
        queues: str = "marketrank",
        hostname: str = "%h",
    ):
        self.env, self.name, self.concurrency, self.app = env, name, concurrency, app
        self.queues, self.hostname = queues, hostname
        self.log_path = Path(log_dir or tempfile.mkdtemp(prefix="marketrank-worker-")) / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self, wait: bool = True) -> "Worker":
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                self.app,
                "worker",
                "-P",
                "prefork",
                "-c",
                str(self.concurrency),
                "-n",
                f"{self.name}@{self.hostname}",
                "-Q",
                self.queues,
                "-l",
                "info",
                "--without-mingle",
                "--without-gossip",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if wait:
            try:
                self.wait_ready()
            except BaseException:
                self.kill()  # never leave a half-started worker behind
                raise
        return self

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log_path.read_text()[-2000:]}")
            if b"ready." in self.log_path.read_bytes():
                return
            time.sleep(0.05)
        raise RuntimeError(f"worker not ready in {timeout}s: {self.log_path.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL the whole process group: the main process and its pool children."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 20) -> None:
        """Warm shutdown: SIGTERM lets the steps in flight finish."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if getattr(self, "_log", None):
            self._log.close()
