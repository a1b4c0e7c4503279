"""A small process supervisor for `make run`: children in their own sessions, stopped in stages.

Each child is started with `start_new_session=True`, so it is the leader of its own process group
and the terminal's Ctrl-C (sent to the foreground process group) reaches only the launcher. The
launcher then stops the children in the order of their `stage` (lowest first): within a stage all
get SIGTERM at once, then each is waited for up to its `stop_timeout`, then its whole process
group is killed, so nothing (a Celery pool child, a Flower left waiting for Redis) survives.

`stop_requested()` turns SIGINT, SIGTERM and SIGHUP into a `StopRequested` exception in the
launcher; a second signal while stopping cuts the waiting short (SIGKILL to what is left). A
launcher that is itself SIGKILLed leaves nothing either: see DIE_WITH_LAUNCHER.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# A launcher killed outright (SIGKILL, the OOM killer) cannot stop its children: each child asks
# the kernel for SIGTERM when the launcher dies (util-linux's setpriv sets PR_SET_PDEATHSIG, then
# execs the child). They all get it at once, without the stop order above, so a step in flight
# may not commit; the watchdog re-enqueues it when the stack runs again. Nothing is left running.
DIE_WITH_LAUNCHER = ["setpriv", "--pdeathsig", "TERM"] if shutil.which("setpriv") else []


class StopRequested(Exception):
    """The operator asked the launcher to stop (Ctrl-C, SIGTERM, a closed terminal)."""


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    log_path: Path
    stage: int
    stop_timeout: float
    reported: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])


def group_members(pgid: int) -> list[int]:
    """Pids of the live processes in process group `pgid` (read from /proc; zombies excluded)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


class Supervisor:
    def __init__(self, say: Callable[[str], None] = print):
        self.say = say
        self.children: list[Child] = []
        self.stopping = False
        self._force = False
        self.starting = False  # a signal now is held until the child is on the list
        self.held: str | None = None

    def start(
        self,
        name: str,
        argv: list[str],
        *,
        log_path: Path,
        stage: int,
        stop_timeout: float = 10.0,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Child:
        log = open(log_path, "ab")
        self.starting = True
        try:
            process = subprocess.Popen(
                [*DIE_WITH_LAUNCHER, *argv],
                cwd=cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            child = Child(name, process, log_path, stage, stop_timeout)
            self.children.append(child)
        finally:
            self.starting = False
            log.close()  # the child holds its own copy
        if self.held:  # a stop asked for while starting: the child is on the list, to be stopped
            raise StopRequested(self.held)
        return child

    def newly_exited(self) -> list[Child]:
        """Children that exited on their own since the last call (each reported once)."""
        gone = [c for c in self.children if not c.reported and c.process.poll() is not None]
        for child in gone:
            child.reported = True
        return gone

    def force(self) -> None:
        """Stop waiting for warm shutdowns: what is left is killed."""
        self._force = True

    def stop_all(self) -> None:
        """Stage by stage, lowest first; each stage warm (SIGTERM), then killed at its timeout."""
        self.stopping = True
        for stage in sorted({c.stage for c in self.children}):
            group = [c for c in self.children if c.stage == stage]
            for child in group:
                if child.process.poll() is None:
                    self.say(f"stopping {child.name} (pid {child.pid})")
                    # The leader only: a Celery worker's warm shutdown lets its pool children
                    # finish their steps; SIGTERM to them would kill the steps in flight.
                    child.process.send_signal(signal.SIGTERM)
            for child in group:
                self._wait(child)
        for child in self.children:  # stragglers of groups whose leader is gone
            _signal_group(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5  # SIGKILL is not instant: see them gone before saying so
        while any(group_members(c.pid) for c in self.children) and time.monotonic() < deadline:
            time.sleep(0.02)

    def _wait(self, child: Child) -> None:
        deadline = time.monotonic() + child.stop_timeout
        while child.process.poll() is None and not self._force and time.monotonic() < deadline:
            time.sleep(0.05)
        if child.process.poll() is None:
            reason = "asked to stop at once" if self._force else f"after {child.stop_timeout:.0f} s"
            self.say(f"{child.name} did not stop: killed ({reason})")
            _signal_group(child.pid, signal.SIGKILL)
            child.process.wait()
        child.reported = True
        deadline = time.monotonic() + 5  # e.g. pool children finishing after their parent
        while group_members(child.pid) and not self._force and time.monotonic() < deadline:
            time.sleep(0.05)
        _signal_group(child.pid, signal.SIGKILL)


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def stop_requested(supervisor: Supervisor) -> None:
    """Install the launcher's handlers: the first signal raises StopRequested, later ones
    force the stop."""

    def handler(signum: int, _frame: object) -> None:
        if supervisor.stopping:
            supervisor.say(f"{signal.Signals(signum).name} again: killing what is left")
            supervisor.force()
            return
        supervisor.stopping = True
        if supervisor.starting:
            supervisor.held = signal.Signals(signum).name
            return
        raise StopRequested(signal.Signals(signum).name)

    for signum in STOP_SIGNALS:
        signal.signal(signum, handler)
