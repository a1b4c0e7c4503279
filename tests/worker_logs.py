"""Reading what the workers logged: injected data-source faults, the watchdog's re-enqueues and
give-ups, no-op deliveries, pool deaths, and each task's deliveries and decisions. The chaos run
reports from it; tests/test_load.py checks it counts the watchdog's own line.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path


@dataclass
class LogStats:
    faults: Counter = field(default_factory=Counter)
    kicks: int = 0
    kicks_at: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    gave_up: int = 0
    expired: int = 0
    noops: Counter = field(default_factory=Counter)
    task_errors: int = 0
    worker_crashes: int = 0
    pool_deaths: int = 0
    restored_on_shutdown: int = 0
    received: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    decisions: dict[str, list[tuple[float, str]]] = field(default_factory=lambda: defaultdict(list))


LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
RECEIVED = re.compile(r"Task marketrank\.(?:init|rank_step)\[([0-9a-f-]+)\] received")
# The watchdog's line for a lost step (tasks/watchdog.py), as its own worker logs it.
KICK = re.compile(r"\[(\w+) chain=\w+ seq=-?\d+\] step lost \(no lease, not in the broker\): re-enqueued")
SUCCEEDED = re.compile(
    r"Task marketrank\.(?:init|rank_step)\[([0-9a-f-]+)\] succeeded in "
    r"[0-9.e-]+s: \{'decision': '([^']+)'"
)


def scan_worker_logs(paths: list[Path]) -> LogStats:
    stats = LogStats()
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            stamp = LOG_TIME.match(line)
            at = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp() if stamp else 0.0
            if "injected fault: " in line:
                stats.faults[line.split("injected fault: ", 1)[1].split()[0]] += 1
            elif kick := KICK.search(line):
                stats.kicks += 1
                stats.kicks_at[kick.group(1)].append(at)
            elif "watchdog gave_up" in line:
                stats.gave_up += 1
            elif "watchdog expired" in line:
                stats.expired += 1
            elif " no-op: " in line:
                stats.noops[line.split(" no-op: ", 1)[1].split()[0]] += 1
            elif "raised unexpected" in line:
                stats.task_errors += 1
            elif "Unrecoverable error" in line:
                stats.worker_crashes += 1
            elif "exited with 'signal 9" in line:
                stats.pool_deaths += 1
            elif restored := re.search(r"Restoring (\d+) unacknowledged", line):
                stats.restored_on_shutdown += int(restored.group(1))
            elif match := RECEIVED.search(line):
                stats.received[match.group(1)].append(at)
            elif match := SUCCEEDED.search(line):
                stats.decisions[match.group(1)].append((at, match.group(2)))
    return stats
