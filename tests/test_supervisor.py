"""The process supervisor behind `make run`: children in their own sessions, stopped stage by
stage, nothing of their process groups left; a signal to the launcher becomes StopRequested."""

import os
import signal
import sys

import pytest

from launcher.supervisor import StopRequested, Supervisor, group_members, stop_requested

# A child that notes SIGTERM in its log, takes `delay` seconds to stop, and has a child of its own.
CHILD = """
import signal, subprocess, sys, time
delay = float(sys.argv[1])
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
def stop(*_):
    print("SIGTERM", time.monotonic(), flush=True)
    time.sleep(delay)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
while True:
    time.sleep(0.1)
"""


def start(supervisor, tmp_path, name, stage, delay=0.0, stop_timeout=10.0):
    child = supervisor.start(
        name,
        [sys.executable, "-c", CHILD, str(delay)],
        stage=stage,
        log_path=tmp_path / f"{name}.log",
        stop_timeout=stop_timeout,
    )
    from tests.conftest import wait_until

    wait_until(lambda: "ready" in child.log_path.read_text(), timeout=20, message=f"{name} ready")
    return child


def stopped_at(child) -> float:
    return float(child.log_path.read_text().split("SIGTERM ")[1].split()[0])


@pytest.mark.slow
def test_stages_stop_in_order_each_waited_for_and_nothing_is_left(tmp_path):
    lines = []
    supervisor = Supervisor(lines.append)
    last = start(supervisor, tmp_path, "redis", stage=4)
    slow = start(supervisor, tmp_path, "worker", stage=2, delay=1.0)
    first = start(supervisor, tmp_path, "beat", stage=0)
    pgids = [c.pid for c in supervisor.children]
    assert all(len(group_members(p)) == 2 for p in pgids)  # leader and its own child
    assert all(os.getsid(p) == p for p in pgids)  # sessions of their own: no terminal Ctrl-C
    supervisor.stop_all()
    assert stopped_at(first) < stopped_at(slow) and stopped_at(slow) + 1.0 <= stopped_at(last)
    assert lines == [
        "stopping beat (pid %d)" % first.pid,
        "stopping worker (pid %d)" % slow.pid,
        "stopping redis (pid %d)" % last.pid,
    ]
    assert all(group_members(p) == [] for p in pgids)


def test_a_child_that_does_not_stop_is_killed_at_its_timeout(tmp_path):
    lines = []
    supervisor = Supervisor(lines.append)
    stubborn = start(supervisor, tmp_path, "flower", stage=3, delay=30, stop_timeout=1)
    supervisor.stop_all()
    assert lines[-1] == "flower did not stop: killed (after 1 s)"
    assert stubborn.process.returncode == -signal.SIGKILL and group_members(stubborn.pid) == []


def test_a_signal_becomes_stop_requested_and_a_second_forces_the_stop(tmp_path):
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    lines = []
    supervisor = Supervisor(lines.append)
    try:
        stop_requested(supervisor)
        with pytest.raises(StopRequested):
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 0.1)  # let the handler run
        assert supervisor.stopping
        os.kill(os.getpid(), signal.SIGINT)  # while stopping: no exception, the stop is forced
        assert supervisor._force and lines == ["SIGINT again: killing what is left"]
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
