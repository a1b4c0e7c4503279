"""The chaos run's summary (bench/chaos.py): what it injected, how the system recovered, how long
recoveries took, and the deaths of the Redis primary (bench/chaos_failover.py). Figures only: the
run itself records the violations."""

from __future__ import annotations

import statistics
import time
from collections import Counter, defaultdict
from typing import Any, Protocol

from bench.chaos_checks import kill_recoveries, redeliveries
from bench.chaos_failover import failover_lines, unconfirmed_starts
from tests.worker_logs import LogStats


class ChaosRun(Protocol):
    """What the summary reads of a finished run (bench.chaos.ChaosRun), named here so that this
    module does not import the one that calls it."""

    o: Any
    stack: Any
    started: list
    faults: Counter
    calls: Counter
    kills: list
    failovers: list
    user_resumes: Counter
    counts: Counter
    commits: Any
    lost: dict

    def _violation(self, text: str) -> None: ...


def summary_lines(
    run: ChaosRun,
    outcome: Counter,
    commits: int,
    compared: int,
    utilization: float,
    stats: LogStats,
    recoveries: list,
    kick_delays: list[float],
    redelivered: Counter,
    late_not_noop: int,
    times: tuple[float, float, float, float],
) -> list[str]:
    """The summary's lines, from what the run counted and what the checks found."""
    o, s = run.o, run.stack.settings
    chaos_began, chaos_ended, settled, began = times
    calls = defaultdict(lambda: [0, 0])
    for (action, changed), count in run.calls.items():
        calls[action][0] += count
        calls[action][1] += count if changed else 0
    lines = [
        f"marketrank chaos run, seed {o.seed}: {len(run.started)} score analyses over "
        f"{o.data_dir} (batch size {o.batch_size}) on 2 workers (prefork, concurrency 2), "
        f"{chaos_ended - chaos_began:.0f} s of faults, settled after "
        f"{settled - chaos_ended:.0f} s more, {time.time() - began:.0f} s in all",
        f"timings: LEASE_MS={s.lease_ms} HEARTBEAT_MS={s.heartbeat_ms} "
        f"WATCHDOG_GRACE_S={s.watchdog_grace_s:g} WATCHDOG_INTERVAL_S={s.watchdog_interval_s:g} "
        f"WATCHDOG_CONFIRM_S={s.watchdog_confirm_s:g} WATCHDOG_MAX_ATTEMPTS={s.watchdog_max_attempts} "
        f"VISIBILITY_TIMEOUT_S={s.visibility_timeout_s} (recovery bound max(lease, grace) + "
        f"interval + confirm = {s.recovery_bound_s:g} s)",
        f"outcome: {', '.join(f'{n} {k}' for k, n in sorted(outcome.items()))}; {commits} steps "
        f"committed; {compared} final rankings compared with runs without faults; pool "
        f"processes busy with committed steps {utilization:.0%} of the time under faults",
        "faults injected:",
        f"  worker SIGKILL (main + pool)        {run.faults['worker_sigkill']}",
        f"  pool children SIGKILL               {run.faults['pool_sigkill']}",
        f"  worker SIGTERM (warm shutdown)      {run.faults['worker_sigterm']}",
        f"  worker frozen past its leases (SIGSTOP, SIGCONT) {run.faults['worker_freeze']}",
        f"  redis primary SIGKILL, Sentinel failover {run.faults['primary killed']}",
        f"  data source errors                  {stats.faults['error']}",
        f"  data source slow calls              {stats.faults['slow']}",
        f"  data source crashes (SIGKILL self)  {stats.faults['crash']}",
        f"  control keys expired                {run.faults['control key expired']}",
        f"  force-resume by an admin            {run.faults['force-resume']}",
        "  user calls (changed something)      "
        + ", ".join(f"{a} {n} ({c})" for a, (n, c) in sorted(calls.items())),
        "recoveries:",
        f"  watchdog re-enqueues                {stats.kicks}",
        f"  watchdog gave up (paused, admins told) {stats.gave_up}; control expired parked {stats.expired}",
        "  user resumes after the faults       "
        + (", ".join(f"{k} {n}" for k, n in sorted(run.user_resumes.items())) or "none"),
        "  deliveries that were no-ops         "
        + ", ".join(f"{k} {n}" for k, n in sorted(stats.noops.items())),
        f"  broker redeliveries                 {redelivered['soon']} requeued at once, "
        f"{redelivered['late']} after the visibility timeout ({late_not_noop} of those did "
        f"work); {stats.restored_on_shutdown} restored at warm shutdown",
        f"  pool processes lost                 {stats.pool_deaths}; task errors logged "
        f"{stats.task_errors}; workers that exited on their own {stats.worker_crashes}",
    ]
    if recoveries:
        longest, kind = max(recoveries)
        lines.append(
            f"kill or freeze -> next commit of the interrupted analysis: longest {longest:.1f} s "
            f"(after a {kind.replace('_', ' ')}), median "
            f"{statistics.median(d for d, _ in recoveries):.1f} s over {len(recoveries)} "
            f"interrupted steps"
        )
    else:
        lines.append("kill -> next commit: no step was interrupted by a kill")
    if kick_delays:
        lines.append(
            f"kill or freeze -> watchdog re-enqueue of the interrupted step: longest "
            f"{max(kick_delays):.1f} s, median {statistics.median(kick_delays):.1f} s over "
            f"{len(kick_delays)} (bound {s.recovery_bound_s:g} s + the watchdog task's wait "
            f"for a free pool process; the rest of the way to the commit is the queue, a "
            f"worker to be up again, and the step)"
        )
    lines += failover_lines(
        run.failovers, run.commits, run.lost, unconfirmed_starts(run.stack.log_dir / "driver.log")
    )
    return lines


def summarize(
    run: ChaosRun,
    outcome,
    histories,
    events,
    stats: LogStats,
    compared: int,
    window: tuple[float, float, float, float],
) -> list[str]:
    """The summary's lines, and the run's counts; records the violations the logs show."""
    chaos_began, chaos_ended = window[0], window[1]
    commits = sum(len(h) for h in histories.values())
    busy = sum(
        min(e.finished_at, chaos_ended) - max(e.started_at, chaos_began)
        for h in histories.values()
        for e in h
        if e.finished_at > chaos_began and e.started_at < chaos_ended
    )
    utilization = busy / (4 * (chaos_ended - chaos_began))
    by_attempt = {e.attempt for h in histories.values() for e in h}
    recoveries, kick_delays = kill_recoveries(run.kills, histories, events, by_attempt, stats.kicks_at)
    redelivered, late_not_noop = redeliveries(stats, run.stack.settings.visibility_timeout_s)
    run.counts.update(
        {
            "analyses": len(run.started),
            "completed": outcome["completed"],
            "compared": compared,
            "commits": commits,
            "kills": sum(run.faults[k] for k in ("worker_sigkill", "pool_sigkill", "worker_freeze")),
            "primary kills": len(run.failovers),
            "lost commits": sum(len(seqs) for seqs in run.lost.values()),
            "data source faults": sum(stats.faults.values()),
            "interrupted": len(recoveries),
            "longest kick delay": int(max(kick_delays, default=0)),
            "watchdog kicks": stats.kicks,
            "redeliveries": sum(redelivered.values()),
        }
    )
    lines = summary_lines(
        run,
        outcome,
        commits,
        compared,
        utilization,
        stats,
        recoveries,
        kick_delays,
        redelivered,
        late_not_noop,
        window,
    )
    if late_not_noop:
        run._violation(
            f"{late_not_noop} redeliveries after the visibility timeout did work: "
            f"the watchdog had not recovered those steps"
        )
    if stats.worker_crashes:
        run._violation(
            f"{stats.worker_crashes} worker(s) exited on their own "
            f"('Unrecoverable error' in their logs) instead of riding out a fault"
        )
    return lines
