"""`make run` stops cleanly: Ctrl-C (SIGINT to the terminal's process group) or SIGTERM stops bot
and beat, warm-stops the workers so the step in flight commits, then Flower, then Redis; nothing
of the stack is left running and nobody prints a traceback."""

import contextlib
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import redis

from analysis.engine.runtime import Runtime
from analysis.markets.demo import DEMO_MARKETS
from analysis.settings import Settings
from launcher.supervisor import group_members
from tests.conftest import wait_until
from tests.helpers import assert_history_is_one_clean_chain
from tests.servers import ROOT, free_port

pytestmark = pytest.mark.slow


class Launcher:
    """`python -m launcher.run` in its own process group, as a terminal runs it."""

    def __init__(self, tmp_path, **env: str):
        self.redis_port, self.flower_port, self.sandbox_port = free_port(), free_port(), free_port()
        self.var_dir = tmp_path
        self.env = {
            **os.environ,
            "REDIS_URL": "",
            "REDIS_PORT": str(self.redis_port),
            "FLOWER_PORT": str(self.flower_port),
            "MARKETRANK_VAR_DIR": str(tmp_path),
            "SANDBOX_PORT": str(self.sandbox_port),
            "EXPORT_PORT": str(free_port()),
            "TELEGRAM_BOT_TOKEN": "",
            **env,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "launcher.run"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)
            self._queue.put(line)

    def wait_for(self, text: str, timeout: float = 180) -> None:
        wait_until(
            lambda: any(text in line for line in self.lines) or self.process.poll() is not None,
            timeout=timeout,
            message=text,
        )
        assert any(text in line for line in self.lines), self.output

    @property
    def output(self) -> str:
        return "".join(self.lines)

    @property
    def pids(self) -> dict[str, int]:
        return {m[0]: int(m[1]) for m in re.findall(r"started (\w+) \(pid (\d+)\)", self.output)}

    def marketrank(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "cli.main", *args],
            cwd=ROOT,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )

    def kill(self) -> None:
        """Leave nothing behind even when the test fails."""
        for pid in [self.process.pid, *self.pids.values()]:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.mark.parametrize(
    "signum, whom, flower_port_taken", [(signal.SIGINT, "group", False), (signal.SIGTERM, "launcher", True)]
)
def test_a_stop_mid_step_commits_the_step_and_leaves_nothing_running(
    tmp_path, signum, whom, flower_port_taken, llm_server
):
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    # Slow steps: the stack's LLM judge is the local OpenAI-compatible server, which answers each
    # comparison after 1.5 s (a step sends its comparisons concurrently).
    llm_server.reset()
    llm_server.delay_next(10_000, 1.5)
    judge = {
        "OPENAI_BASE_URL": llm_server.base_url,
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_MODEL": "judge-small",
        "OPENAI_TIMEOUT_S": "20",
    }
    launcher = Launcher(
        tmp_path, **judge, **({"FLOWER_PORT": str(squatter.getsockname()[1])} if flower_port_taken else {})
    )
    # Without a token the bot runs against the local sandbox; stopped in this order:
    stages = [
        ["bot", "beat"],
        ["listener"],
        ["worker", "watchdog"],
        [] if flower_port_taken else ["flower"],
        ["redis"],
    ]
    stack = [name for stage in stages for name in stage]
    try:
        launcher.wait_for("the stack is running")
        assert set(launcher.pids) == set(stack), launcher.output
        if flower_port_taken:  # said on the terminal, with the setting to change
            assert (
                f"Flower is not started: port {squatter.getsockname()[1]} is in use, so Flower "
                f"cannot start there; set FLOWER_PORT to a free port"
            ) in launcher.output
            assert "Flower on http" not in launcher.output
        else:
            assert f"Flower on http://127.0.0.1:{launcher.flower_port}" in launcher.output
        url = f"redis://127.0.0.1:{launcher.redis_port}/0"
        store = Runtime(Settings(redis_url=url)).store
        started = launcher.marketrank(
            "start",
            "--strategy",
            "llm",
            "--prompt",
            "stop test",
            "--symbols",
            ",".join(DEMO_MARKETS[:6]),
            "--top",
            "2",
        )
        assert started.returncode == 0, started.stderr
        analysis_id = started.stdout.strip()

        def ranking_step_in_flight():
            # Counted before the lease is read: a step that holds the lease has not committed
            # (its commit releases the lease), so the count cannot include the step in flight.
            committed = len(store.history(analysis_id))
            holder = store.lease_holder(analysis_id)
            return (holder, committed) if holder and committed >= 1 else None

        attempt, committed_before = wait_until(
            ranking_step_in_flight, timeout=60, message="a ranking step in flight"
        )

        if whom == "group":  # what a terminal's Ctrl-C does: the foreground process group
            os.killpg(launcher.process.pid, signum)
        else:  # `kill <launcher pid>`
            launcher.process.send_signal(signum)
        assert launcher.process.wait(90) == 0, launcher.output

        out = launcher.output
        at = {name: out.index(f"stopping {name}") for name in stack}
        for earlier, later in zip([s for s in stages if s], [s for s in stages if s][1:]):
            assert max(at[n] for n in earlier) < min(at[n] for n in later), out
        for pid in launcher.pids.values():
            assert group_members(pid) == [], f"process group {pid} still has members"
        assert group_members(launcher.process.pid) == []
        logs = {name: (tmp_path / f"{name}.log").read_text() for name in stack if name != "redis"}
        assert "Application is stopping" in logs["bot"] or "stopped" in logs["bot"].lower(), logs["bot"][
            -2000:
        ]
        for name, text in {"launcher": out, **logs}.items():
            assert "Traceback" not in text, f"{name}: {text[-3000:]}"
        assert "Couldn't ack" not in logs["worker"]

        with restarted_redis(launcher):  # from its append-only file, as the next `make run` would
            history = store.history(analysis_id)
            gist, lease = store.load(analysis_id), store.lease_holder(analysis_id)
        # The step in flight at the signal committed (and any the worker began before its own
        # SIGTERM, which comes after bot and beat have stopped); none was left half done.
        assert attempt in {entry.attempt for entry in history}
        assert len(history) > committed_before
        assert_history_is_one_clean_chain(history, gist.seq)
        assert lease is None
    finally:
        launcher.kill()
        squatter.close()


@contextlib.contextmanager
def restarted_redis(launcher: Launcher):
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(launcher.redis_port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(launcher.var_dir),
            "--appendonly",
            "yes",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        client = redis.Redis(port=launcher.redis_port)
        wait_until(lambda: _answers(client), timeout=20, message="redis-server back")
        yield
    finally:
        server.terminate()
        server.wait(10)


def _answers(client) -> bool:
    try:
        return client.ping()
    except redis.ConnectionError:
        return False


def test_a_launcher_killed_outright_leaves_nothing_running(tmp_path):
    """SIGKILL gives the launcher no chance to stop its children; the kernel tells each of them
    (PR_SET_PDEATHSIG), so none is left holding its port or its Redis data."""
    launcher = Launcher(tmp_path)
    try:
        launcher.wait_for("the stack is running")
        children = launcher.pids
        assert {"redis", "worker", "bot"} <= set(children), launcher.output
        # The kernel signals every child at once, so any of them may find Redis already gone; on a
        # loaded machine Redis often is the first to go. Stop it first, the order least kind to
        # the others: none of them may spend its stop retrying a Redis that is not coming back.
        os.killpg(children["redis"], signal.SIGKILL)
        wait_until(lambda: group_members(children["redis"]) == [], timeout=10, message="redis to stop")
        launcher.process.kill()  # the launcher alone, not its children's process groups
        launcher.process.wait(10)
        for name, pid in children.items():
            wait_until(lambda: group_members(pid) == [], timeout=60, message=f"{name} to stop")
    finally:
        launcher.kill()
