"""A Redis primary, its replica and three sentinels (Debian's redis-server, `--sentinel` mode), all
on free loopback ports, and a Stack whose every process reaches Redis through them.

Sentinel timings are short so a test sees the whole failover in seconds; each is stated here and
in docs/operations.md: the primary is called down after DOWN_AFTER_MS without an answer, a
failover that stalls is retried after FAILOVER_TIMEOUT_MS, and QUORUM sentinels must agree.

Used by tests/test_sentinel_failover.py, bench/sentinel_bench.py and the chaos run (bench/chaos.py).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.servers import RedisServer, free_port, start_on_free_port
from tests.stack import Stack

MASTER = "mymaster"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000
QUORUM = 2


class SentinelProcess:
    def __init__(self, primary_port: int):
        self.dir = tempfile.mkdtemp(prefix="marketrank-sentinel-")
        self.conf = Path(self.dir) / "sentinel.conf"
        self.primary_port = primary_port
        self.process, self.port = start_on_free_port(self._spawn, free_port(), movable=True)
        self.client = redis.Redis(port=self.port, socket_timeout=1, decode_responses=True)

    def _spawn(self, port: int) -> subprocess.Popen:
        # Sentinel rewrites its config file as it learns; it must be its own, writable.
        self.conf.write_text(
            "\n".join(
                [
                    f"port {port}",
                    "bind 127.0.0.1",
                    f"dir {self.dir}",
                    f"sentinel monitor {MASTER} 127.0.0.1 {self.primary_port} {QUORUM}",
                    f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}",
                    f"sentinel failover-timeout {MASTER} {FAILOVER_TIMEOUT_MS}",
                    f"sentinel parallel-syncs {MASTER} 1",
                    "",
                ]
            )
        )
        return subprocess.Popen(
            ["redis-server", str(self.conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def cleanup(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


class SentinelCluster:
    """One primary, one replica of it, three sentinels watching the primary."""

    def __init__(self) -> None:
        self.primary = RedisServer(appendonly=True).start()
        self.replica = RedisServer(
            appendonly=True, args=("--replicaof", "127.0.0.1", str(self.primary.port))
        ).start()
        self.sentinels = [SentinelProcess(self.primary.port) for _ in range(3)]
        try:
            self._wait_ready()
        except Exception:
            self.cleanup()
            raise

    @property
    def addresses(self) -> str:
        return ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    def _wait_ready(self, timeout: float = 30) -> None:
        """The replica in sync, and every sentinel knows the replica and the two other sentinels
        (they find each other through the primary, every 2 s): only then can a failover happen."""
        deadline = time.monotonic() + timeout
        replica = redis.Redis(port=self.replica.port, decode_responses=True)
        seen: dict[str, object] = {}
        while time.monotonic() < deadline:
            try:
                seen["replica link"] = replica.info("replication").get("master_link_status")
                for s in self.sentinels:
                    master = s.client.sentinel_master(MASTER)
                    seen[f"sentinel {s.port}"] = (
                        f"{master['num-other-sentinels']} other sentinels, {master['num-slaves']} replicas"
                    )
                if seen["replica link"] == "up" and all(
                    seen[f"sentinel {s.port}"] == "2 other sentinels, 1 replicas" for s in self.sentinels
                ):
                    return
            except redis.RedisError as exc:
                seen["error"] = repr(exc)
            time.sleep(0.1)
        raise RuntimeError(f"the sentinels did not see the replica and each other in time: {seen}")

    def primary_port(self) -> int | None:
        """The primary's port as the first sentinel that answers names it."""
        for s in self.sentinels:
            try:
                return int(s.client.sentinel_get_master_addr_by_name(MASTER)[1])
            except (redis.RedisError, TypeError):
                continue
        return None

    def kill_primary(self) -> float:
        """SIGKILL the primary (a lost machine): nothing it has not replicated yet survives."""
        assert self.primary.process is not None
        os.kill(self.primary.process.pid, signal.SIGKILL)
        killed_at = time.time()
        self.primary.process.wait(10)
        self.primary.process = None
        return killed_at

    def wait_promoted(self, timeout: float = 30) -> float:
        """Wait until the sentinels name the replica as primary and it takes writes; the time."""
        deadline = time.monotonic() + timeout
        replica = redis.Redis(port=self.replica.port, decode_responses=True)
        while time.monotonic() < deadline:
            try:
                if (
                    self.primary_port() == self.replica.port
                    and replica.info("replication")["role"] == "master"
                ):
                    return time.time()
            except redis.RedisError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"no promotion within {timeout}s (sentinels name {self.primary_port()})")

    def rejoin_as_replica(self, timeout: float = 30) -> float:
        """After a failover: start the killed primary again as the replica of the promoted one
        (as an operator would; never as a primary that could take writes), wait until it is in
        sync and every sentinel sees it up, and swap the roles, so that the next kill_primary
        kills the promoted one. Answers the time it was back."""
        dead, promoted = self.primary, self.replica
        assert dead.process is None, "rejoin only a killed primary"
        self._wait_all_name(promoted.port, timeout)
        dead.args = ["--replicaof", "127.0.0.1", str(promoted.port)]
        dead.start()
        self.primary, self.replica = promoted, dead
        deadline = time.monotonic() + timeout
        replica = redis.Redis(port=dead.port, decode_responses=True)
        while time.monotonic() < deadline:
            try:
                if replica.info("replication").get("master_link_status") == "up" and all(
                    self._sees_replica_up(s, dead.port) for s in self.sentinels
                ):
                    return time.time()
            except redis.RedisError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"the killed primary did not rejoin as a replica within {timeout}s")

    def _wait_all_name(self, port: int, timeout: float) -> None:
        """Every sentinel names `port` as the primary (not only the first that answers)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if all(
                    int(s.client.sentinel_get_master_addr_by_name(MASTER)[1]) == port for s in self.sentinels
                ):
                    return
            except (redis.RedisError, TypeError):
                pass
            time.sleep(0.05)
        raise AssertionError(f"not every sentinel names port {port} as primary within {timeout}s")

    @staticmethod
    def _sees_replica_up(sentinel: SentinelProcess, port: int) -> bool:
        return any(
            r["port"] == port
            and not r["is_sdown"]
            and not r["is_disconnected"]
            and r.get("master-link-status") == "ok"
            for r in sentinel.client.sentinel_slaves(MASTER)
        )

    def cleanup(self) -> None:
        for s in self.sentinels:
            s.cleanup()
        self.replica.cleanup()
        self.primary.cleanup()


class SentinelStack(Stack):
    """A Stack whose processes find Redis through the sentinels (REDIS_SENTINELS)."""

    def _start_redis(self, appendonly: bool) -> dict[str, str]:
        self.cluster = SentinelCluster()
        self.redis_server = self.cluster  # type: ignore[assignment]  # Stack.close cleans it up
        return {
            "REDIS_URL": "redis://127.0.0.1:1/0",  # only its db number is used
            "REDIS_SENTINELS": self.cluster.addresses,
            "REDIS_SENTINEL_MASTER": MASTER,
        }


# --- the failover run the test and the benchmark share -----------------------------------------
COMMIT_LINE = re.compile(r"\[(\S+) chain=\S+ seq=(\d+)\] commit: (continue|completed)")


@dataclass
class FailoverFigures:
    promoted_s: float  # from the kill to the replica taking writes as primary
    next_commit_s: float  # from the kill to the next step committed on the new primary
    reruns: int  # steps committed on the old primary, lost in the switch, run again
    completed: int  # analyses completed after the promotion (of `started`)
    started: int


def commits_in_logs(stack: Stack) -> Counter[tuple[str, int]]:
    """(analysis, seq) -> how many times a worker's commit of it was answered continue/completed."""
    counts: Counter[tuple[str, int]] = Counter()
    for path in stack.logs():
        for match in COMMIT_LINE.finditer(path.read_text(errors="replace")):
            counts[(match[1], int(match[2]))] += 1
    return counts


def run_failover(
    stack: SentinelStack, *, analyses: int = 4, steps: int = 300, mid_run_seq: int = 10, timeout: float = 90
) -> tuple[FailoverFigures, list[str]]:
    """Start `analyses` noop analyses (one trader each), SIGKILL the primary once each has committed
    `mid_run_seq`
    steps, wait for all to complete; the figures and the analyses' ids."""
    from analysis.models import Status
    from analysis.service import Actor
    from tests.helpers import noop_config

    store = stack.runtime.store
    # One trader each: a trader may run only a few analyses at once.
    ids = [stack.service.start(noop_config(steps), Actor(f"trader-{n}")).id for n in range(analyses)]
    deadline = time.monotonic() + timeout
    while min(store.load(i).seq for i in ids) < mid_run_seq:
        if time.monotonic() > deadline:
            raise AssertionError("the analyses did not get going")
        time.sleep(0.01)
    assert all(store.load(i).status == Status.RUNNING for i in ids), "all mid-run at the kill"
    killed_at = stack.cluster.kill_primary()
    promoted_at = stack.cluster.wait_promoted()
    while not all(store.load(i).status == Status.COMPLETED for i in ids):
        if time.monotonic() > deadline:
            raise AssertionError(f"not all completed: {[store.load(i).status for i in ids]}")
        time.sleep(0.05)
    after_kill = [e.finished_at for i in ids for e in store.history(i) if e.finished_at > killed_at]
    reruns = sum(n - 1 for (aid, _), n in commits_in_logs(stack).items() if aid in ids and n > 1)
    return FailoverFigures(
        promoted_s=promoted_at - killed_at,
        next_commit_s=min(after_kill) - killed_at,
        reruns=reruns,
        completed=len(ids),
        started=analyses,
    ), ids
