"""The chaos run's Redis fault (bench/chaos.py): the primary, watched by three sentinels
(tests/sentinel_cluster.py), is SIGKILLed and Sentinel promotes its replica; the killed server comes
back as the new primary's replica, so that a later kill fails over again. Before a kill, the
replica may be cut off for a moment, so that the kill loses what the primary acknowledged meanwhile.

And what each switch cost: the time from the kill to the promotion and to the next committed step,
and the commits the old primary acknowledged but had not yet replicated. Redis replicates after it
answers, so such a commit dies with the primary; the new primary still holds the step's lease and
the previous sequence, the watchdog re-enqueues the step on the same chain and it commits again,
once. The workers' logs show both commits; they are reported here by analysis and sequence, and a
sequence committed twice without a failover between the two commits is an invariant violation.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from pathlib import Path

import redis

from tests.sentinel_cluster import DOWN_AFTER_MS, SentinelStack
from tests.worker_logs import LOG_TIME

# A worker's line for a commit that the primary accepted (analysis/engine/step_runner.py).
COMMIT = re.compile(r"\[(\S+) chain=\S+ seq=(\d+)\] commit: (?:continue|completed|paused) ")
LAG_MAX_S = 0.8 * DOWN_AFTER_MS / 1000  # a replica silent past down-after is not promoted
COMMIT_SETTLE_S = 0.15
UNCONFIRMED_START = re.compile(r"\[(\S+)\] start is on the primary but no replica confirmed it")


@dataclass
class Failover:
    replica_lag_s: float  # how long the replica had been cut off when the primary died
    committed_meanwhile: bool  # whether a step's commit was answered in that time
    killed_at: float
    promoted_at: float  # the replica named by the sentinels and taking writes
    back_at: float  # the killed server in sync again, as the new primary's replica
    killed_port: int
    promoted_port: int


def kill_primary(stack: SentinelStack, replica_lag_s: float = 0.0) -> Failover:
    """SIGKILL the primary, wait for Sentinel's promotion, bring the killed server back as a replica.
    With `replica_lag_s`, the replica is cut off first (_cut_off_replica) and woken right after
    the kill, so that what the primary acknowledged meanwhile dies with it."""
    cluster = stack.cluster
    killed_port, promoted_port = cluster.primary.port, cluster.replica.port
    replica_pid = cluster.replica.process.pid if cluster.replica.process else 0
    cut_at, committed = _cut_off_replica(stack, replica_lag_s) if replica_lag_s > 0 else (0.0, False)
    try:
        killed_at = cluster.kill_primary()
    finally:
        if replica_lag_s > 0:
            os.kill(replica_pid, signal.SIGCONT)
    promoted_at = cluster.wait_promoted()
    back_at = cluster.rejoin_as_replica()
    lag = killed_at - cut_at if replica_lag_s > 0 else 0.0
    return Failover(lag, committed, killed_at, promoted_at, back_at, killed_port, promoted_port)


def _cut_off_replica(stack: SentinelStack, lag_s: float, tries: int = 5) -> tuple[float, bool]:
    """A replica that fell behind (a slow link, a busy host): it is frozen (SIGSTOP) and the
    primary drops its link (else the kernel would keep the stream for it). It stays so `lag_s`
    and until the primary has taken a step's commit, at most LAG_MAX_S (a replica silent past
    Sentinel's down-after could not be promoted); with no commit by then (every worker down at
    that moment), it is woken, catches up, and cut off again. Answers when it was cut off, and
    whether a commit was answered since."""
    cluster = stack.cluster
    pid = cluster.replica.process.pid if cluster.replica.process else 0
    cut_at, committed = time.time(), False
    for attempt in range(tries):
        os.kill(pid, signal.SIGSTOP)
        cut_at = time.time()
        with redis.Redis(port=cluster.primary.port) as primary:
            primary.client_kill_filter(_type="replica")
        committed = _wait_for_a_commit(stack, min_s=lag_s, max_s=LAG_MAX_S)
        if committed or attempt == tries - 1:
            break
        os.kill(pid, signal.SIGCONT)
        with redis.Redis(port=cluster.replica.port, decode_responses=True) as replica:
            deadline = time.monotonic() + 10
            while (
                replica.info("replication").get("master_link_status") != "up" and time.monotonic() < deadline
            ):
                time.sleep(0.05)
    return cut_at, committed


def _wait_for_a_commit(stack: SentinelStack, *, min_s: float, max_s: float) -> bool:
    """Wait `min_s`, and until a step event (written by the commit itself) newer than now has been
    on the primary COMMIT_SETTLE_S (its worker has the answer by then: a commit whose answer the
    kill cut off is retried on the new primary and lost nothing), `max_s` in all; whether one was."""
    client, stream = stack.runtime.redis, stack.runtime.keys.events()
    newest = client.xrevrange(stream, count=1)
    after = f"({newest[0][0].decode()}" if newest else "-"
    began = time.monotonic()
    seen_at = None
    while time.monotonic() - began < max_s:
        now = time.monotonic()
        if seen_at is None and any(
            fields.get(b"kind") == b"step" for _, fields in client.xrange(stream, min=after)
        ):
            seen_at = now
        if seen_at is not None and now - seen_at >= COMMIT_SETTLE_S and now - began >= min_s:
            return True
        time.sleep(0.02)
    return seen_at is not None


def commit_times(paths: list[Path]) -> dict[tuple[str, int], list[float]]:
    """(analysis, seq) -> when a worker logged that its commit of it was accepted, in order."""
    found: dict[tuple[str, int], list[float]] = defaultdict(list)
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            match, stamp = COMMIT.search(line), LOG_TIME.match(line)
            if match and stamp:
                at = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
                found[(match[1], int(match[2]))].append(at)
    return {key: sorted(times) for key, times in found.items()}


def lost_commits(
    commits: dict[tuple[str, int], list[float]], failovers: list[Failover], final_seqs: dict[str, set[int]]
) -> tuple[dict[str, list[int]], list[str]]:
    """The steps whose commit the switch lost (analysis -> seqs), and the violations: a sequence
    accepted twice with no failover between the two commits was committed twice by one primary.
    Nothing commits between a kill and the promotion (there is no primary), so any instant of
    that window tells the old primary's commits from the new one's; its middle, because a log
    line follows its commit by a moment and the promotion is seen a moment late.
    A lost commit is usually run again on the new primary; one whose analysis was cancelled
    first never is: a commit accepted once, while the replica was cut off, whose sequence the
    analysis's final history (`final_seqs`, read on the new primary) lacks, is lost too."""
    lost: dict[str, list[int]] = defaultdict(list)
    violations = []
    switches = [(f.killed_at + f.promoted_at) / 2 for f in failovers]
    cut_off = [(f.killed_at - f.replica_lag_s, s) for f, s in zip(failovers, switches) if f.replica_lag_s]
    for (analysis_id, seq), times in sorted(commits.items()):
        if len(times) < 2:
            if seq not in final_seqs.get(analysis_id, {seq}) and any(a < times[0] < b for a, b in cut_off):
                lost[analysis_id].append(seq)
            continue
        between = [any(before < switch < after for switch in switches) for before, after in pairwise(times)]
        if all(between):
            lost[analysis_id].append(seq)
        else:
            violations.append(
                f"{analysis_id}: seq {seq} committed {len(times)} times with no "
                f"failover between (log times {[f'{t:.3f}' for t in times]})"
            )
    return dict(lost), violations


def unconfirmed_starts(driver_log: Path) -> set[str]:
    """Analyses whose start no replica confirmed in time (the service warned: a failover then
    loses the start)."""
    if not driver_log.exists():
        return set()
    return set(UNCONFIRMED_START.findall(driver_log.read_text(errors="replace")))


def failover_lines(
    failovers: list[Failover],
    commits: dict[tuple[str, int], list[float]],
    lost: dict[str, list[int]],
    unconfirmed: set[str],
) -> list[str]:
    """The summary's lines on the primary's deaths."""
    lines = []
    for n, f in enumerate(failovers, 1):
        switch = (f.killed_at + f.promoted_at) / 2  # as in lost_commits
        after = [t for times in commits.values() for t in times if t > switch]
        next_commit = f"{min(after) - f.killed_at:.1f} s" if after else "none"
        lag = (
            (
                f", its replica cut off {f.replica_lag_s:.2f} s before"
                + ("" if f.committed_meanwhile else ", no step committed meanwhile")
            )
            if f.replica_lag_s
            else ""
        )
        lines.append(
            f"primary SIGKILL {n} (port {f.killed_port} -> {f.promoted_port}{lag}): kill -> "
            f"promoted {f.promoted_at - f.killed_at:.1f} s, -> next committed step "
            f"{next_commit}; the killed server back as a replica after "
            f"{f.back_at - f.killed_at:.1f} s"
        )
    count = sum(len(seqs) for seqs in lost.values())
    named = "; ".join(f"{aid} seq {', '.join(map(str, seqs))}" for aid, seqs in sorted(lost.items()))
    lines.append(
        f"commits the dead primary acknowledged but had not replicated (lost in the switch, run "
        f"again once on the new primary unless their analysis was cancelled first): {count}"
        + (f" ({named})" if named else "")
    )
    lines.append(
        f"starts no replica confirmed in time (the service warned; a failover then loses "
        f"them): {len(unconfirmed)}" + (f" ({', '.join(sorted(unconfirmed))})" if unconfirmed else "")
    )
    return lines
