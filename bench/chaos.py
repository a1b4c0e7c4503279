"""`make chaos`: many `score` analyses over the real Binance candles on two Celery workers while
everything that can go wrong in production goes wrong, then every analysis is checked against the
invariants of docs/architecture.md. Exits non-zero on any violation.

Faults, all at once, for `--duration` seconds:
- a random worker is SIGKILLed (main process and pool) every few seconds and started again; now and
  then only its pool children are killed (the broker requeues their tasks at once), it gets a
  SIGTERM (warm shutdown: the step in flight finishes), or it is frozen (SIGSTOP) until its leases
  run out and the watchdog has redone its steps, then woken (SIGCONT): a zombie;
- storms of duplicate and shuffled pause / resume / refine (and a few cancel) calls from many
  threads, as from impatient users tapping buttons; stale and future refine generations;
- admins force-resume running analyses, sometimes several at once;
- control keys vanish as if their 24 h TTL ran out;
- the Redis primary is SIGKILLed (once in --quick, twice in a full run) and Sentinel promotes its
  replica; every process reaches Redis through three sentinels (REDIS_SENTINELS), and the killed
  server comes back as the new primary's replica (bench/chaos_failover.py);
- the data source fails, is slow, or kills its worker now and then (`faulty:` provider spec,
  tests/doubles/faulty_provider.py).

Then a user resumes whatever is paused (it must say why) until every analysis is completed or
cancelled, and the run checks: each sequence committed once, in order, without overlapping steps and
with one progress event per commit; nothing stuck; no final analysis left in its owner's active set;
every final ranking and confidence equal to the same analysis run without faults (a refined `score`
analysis reports the steadiest top K over the same views, so its reference is the same config run to
completion and then refined once); no worker exited on its own; redeliveries after the visibility
timeout were no-ops. The summary counts faults by kind, recoveries, broker redeliveries and what
they did, and the longest times from a kill to the watchdog's re-enqueue and to the next commit of
the interrupted analysis; for each death of the primary, the time to the promotion and to the next
committed step, and the commits it had acknowledged but not replicated (lost in the switch, run
again once on the new primary: counted and named, never hidden).

    python -m bench.chaos [--analyses 30] [--duration 150] [--seed 7] [--quick] [--keep-logs]
                          [--json PATH]

`tests/test_chaos.py` runs the `--quick` variant. The stack it runs on (workers, beat and a
service over a Sentinel-watched primary and replica) is tests/sentinel_cluster.py's SentinelStack
on tests/stack.py, which the recovery tests use too; what it checks and reports from is
bench/chaos_checks.py and bench/chaos_failover.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from analysis.errors import AnalysisError
from analysis.models import RankingConfig, Status
from analysis.service import REFINE_CAP, REFINE_STEP, Actor
from analysis.settings import Settings
from bench.chaos_checks import (
    Kill,
    ReferenceRuns,
    events_by_analysis,
    log_driver_to,
    ranking_violations,
    reason_kind,
)
from bench.chaos_failover import Failover, commit_times, kill_primary, lost_commits, unconfirmed_starts
from bench.chaos_summary import summarize
from bench.limits import PerUser
from tests.sentinel_cluster import SentinelStack
from tests.stack import FAST_TIMINGS
from tests.worker_logs import scan_worker_logs

logger = logging.getLogger("bench.chaos")

# Chaos analyses rank a longer window than the default: each step does real work, so kills land
# in the middle of steps rather than between them.
CHAOS_ENV = {**FAST_TIMINGS, "WINDOW_CANDLES": "2000"}
DEFAULT_TARGET = float(Settings.model_fields["default_target"].default)  # what the factory sets
# Each trader starts one analysis, and storms refine it up to the cap: each refine of a completed
# one restarts it, which counts like a start (bench/limits.py).
PER_USER = PerUser(starts_per_hour=1 + math.ceil((REFINE_CAP - DEFAULT_TARGET) / REFINE_STEP), active=1)
BENCH_ENV = CHAOS_ENV
FINAL = (Status.COMPLETED, Status.CANCELLED, Status.FAILED)


# --- the chaos run -----------------------------------------------------------------------------
@dataclass
class ChaosOptions:
    data_dir: Path
    analyses: int = 30
    duration_s: float = 150.0
    settle_s: float = 240.0
    seed: int = 7
    batch_size: int = 1
    market_counts: tuple[int, ...] = (20, 30, 40)
    top_ks: tuple[int, ...] = (3, 5, 10)
    kill_every_s: tuple[float, float] = (2.0, 5.0)
    storm_every_s: tuple[float, float] = (0.3, 1.0)
    storm_threads: int = 10
    force_every_s: tuple[float, float] = (2.0, 5.0)
    control_expiries: int = 4
    # The primary's deaths: (share of the duration, seconds its replica had been cut off before,
    # so that commits are lost; bench/chaos_failover.py). A lagging replica only once the last
    # start is in (starts end at 60% of the run), while most analyses still run: a start it loses
    # is a trader's loss (the service warns of it), which the check of vanished ones would report.
    primary_kills: tuple[tuple[float, float], ...] = ((0.3, 0.0), (0.6, 0.6))
    faults: str = "error=0.15,slow=0.05,delay=0.3,crash=0.002"
    cancel_share: float = 0.2
    timings: dict[str, str] = field(default_factory=lambda: dict(CHAOS_ENV))
    keep_logs: bool = False

    @classmethod
    def quick(cls, data_dir: Path, seed: int = 7) -> "ChaosOptions":
        """The `make test` variant: 20 analyses, 30 s of faults, about a minute in all."""
        return cls(
            data_dir=data_dir,
            analyses=20,
            duration_s=30,
            settle_s=60,
            seed=seed,
            market_counts=(12, 16, 24),
            top_ks=(3, 5),
            kill_every_s=(2.0, 4.0),
            control_expiries=2,
            primary_kills=((0.6, 0.6),),
        )


@dataclass
class Started:
    id: str
    actor: Actor
    config: RankingConfig
    at: float


@dataclass
class ChaosReport:
    options: ChaosOptions
    settings: Settings
    lines: list[str]
    violations: list[str]
    log_dir: Path
    logs_kept: bool
    counts: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        verdict = [f"invariant violations: {len(self.violations)}"]
        verdict += [f"  - {v}" for v in self.violations[:50]]
        return "\n".join(self.lines + verdict)


class ChaosRun:
    def __init__(self, options: ChaosOptions):
        self.o = options
        self.rng = random.Random(options.seed)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.started: list[Started] = []
        self.faults: Counter[str] = Counter()
        self.calls: Counter[tuple[str, bool]] = Counter()
        self.kills: list[Kill] = []
        self.failovers: list[Failover] = []
        self.violations: list[str] = []
        self.user_resumes: Counter[str] = Counter()
        self.cancels_left = round(options.cancel_share * options.analyses)
        # Spread the cancels over the run: about 1.5x the budget in expectation, capped by it.
        storms = options.duration_s / (sum(options.storm_every_s) / 2)
        self.cancel_p = min(1.0, 1.5 * self.cancels_left / max(storms, 1))
        self.admin = Actor("chaos-admin", is_admin=True)
        self.stack: SentinelStack | None = None
        self.counts: Counter[str] = Counter()  # headline figures, for tests

    # --- set-up -------------------------------------------------------------------------------
    def run(self) -> ChaosReport:
        o = self.o
        began = time.time()
        self.stack = stack = SentinelStack(o.timings, name="chaos")
        handler = log_driver_to(stack.log_dir / "driver.log")
        try:
            stack.start_worker(1, wait=False)
            stack.start_worker(2, wait=False)
            for worker in stack.workers.values():
                worker.wait_ready()
            stack.start_beat()
            self._plan_analyses()
            chaos_began = time.time()
            threads = [
                threading.Thread(target=self._guard(body), name=body.__name__, daemon=True)
                for body in (
                    self._starter,
                    self._killer,
                    self._stormer,
                    self._nudger,
                    self._force_resumer,
                    self._control_expirer,
                    self._primary_killer,
                )
            ]
            for thread in threads:
                thread.start()
            self.stop.wait(o.duration_s)
            self.stop.set()
            for thread in threads:
                thread.join(60)
            chaos_ended = time.time()
            self._restore_workers()
            self._settle()
            settled = time.time()
            time.sleep(stack.settings.lease_ms / 1000 + 0.5)  # leases of lost steps run out
            lines = self._check_and_summarize(chaos_began, chaos_ended, settled, began)
        finally:
            logging.getLogger().removeHandler(handler)
            handler.close()
            keep = o.keep_logs or bool(self.violations)
            stack.close(keep_logs=keep)
        return ChaosReport(o, stack.settings, lines, self.violations, stack.log_dir, keep, self.counts)

    def _guard(self, body):
        def run() -> None:
            try:
                body()
            except Exception as exc:  # a bug of the harness or an error a user would see
                logger.exception("chaos thread %s failed", body.__name__)
                self._violation(f"chaos thread {body.__name__} failed: {type(exc).__name__}: {exc}")

        run.__name__ = body.__name__
        return run

    def _violation(self, text: str) -> None:
        with self.lock:
            self.violations.append(text)

    def _plan_analyses(self) -> None:
        from analysis.config_factory import RankingConfigFactory
        from analysis.markets.csv_dir import CsvDirProvider

        o = self.o
        provider = CsvDirProvider(o.data_dir)
        self.factory = RankingConfigFactory(self.stack.settings, provider)
        self.faulty_spec = f"faulty:{o.faults}:{provider.name}" if o.faults else provider.name
        available = self.factory.available_markets("1h")
        self.plan = []
        for i in range(o.analyses):
            count = min(self.rng.choice(o.market_counts), len(available))
            symbols = sorted(self.rng.sample(available, count))
            top_k = min(self.rng.choice(o.top_ks), count - 1)
            config = self.factory.create_ranking_config(symbols=symbols, top_k=top_k)
            config = config.model_copy(update={"batch_size": o.batch_size, "data_source": self.faulty_spec})
            # A third start at once, the rest over 60% of the run: work all the way.
            at = 0.0 if i < o.analyses // 3 else self.rng.uniform(0, 0.6 * o.duration_s)
            self.plan.append((at, Actor(f"trader-{i:02d}"), config))
        self.plan.sort(key=lambda item: item[0])

    # --- the fault makers (threads) -----------------------------------------------------------
    def _starter(self) -> None:
        began = time.time()
        for at, actor, config in self.plan:
            delay = began + at - time.time()
            if delay > 0:
                time.sleep(delay)  # starts continue past the chaos window if it was short
            gist = self.stack.service.start(config, actor)
            with self.lock:
                self.started.append(Started(gist.id, actor, config, time.time()))

    def _pick(self, rng: random.Random, statuses: tuple[Status, ...] | None = None) -> Started | None:
        with self.lock:
            candidates = list(self.started)
        if statuses is not None:
            candidates = [
                s for s in candidates if (g := self.stack.runtime.store.load(s.id)) and g.status in statuses
            ]
        return rng.choice(candidates) if candidates else None

    def _killer(self) -> None:
        rng = random.Random(self.rng.random())
        stack = self.stack
        while not self.stop.wait(rng.uniform(*self.o.kill_every_s)):
            slot = rng.choice([1, 2])
            kind = rng.choices(
                ["worker_sigkill", "pool_sigkill", "worker_sigterm", "worker_freeze"],
                weights=[0.45, 0.2, 0.1, 0.25],
            )[0]
            leases = self.stack.leases()
            at = time.time()
            if kind == "worker_sigkill":
                stack.kill_worker(slot)
                stack.start_worker(slot, wait=False)
            elif kind == "pool_sigkill":
                if not stack.kill_pool_children(slot):
                    continue
            elif kind == "worker_sigterm":
                if not stack.worker_alive(slot):
                    continue
                stack.stop_worker(slot)
                stack.start_worker(slot, wait=False)
            else:
                bound = stack.settings.recovery_bound_s
                if not stack.freeze_worker(slot, rng.uniform(bound + 1, bound + 4)):
                    continue
            with self.lock:
                self.kills.append(Kill(at, kind, slot, leases))
                self.faults[kind] += 1

    def _stormer(self) -> None:
        rng = random.Random(self.rng.random())
        while not self.stop.wait(rng.uniform(*self.o.storm_every_s)):
            with self.lock:
                cancel = self.cancels_left > 0 and rng.random() < self.cancel_p
            # A storm with cancels goes to an analysis that is not over yet, any other to any.
            target = self._pick(rng, (Status.PENDING, Status.RUNNING, Status.PAUSED) if cancel else None)
            if target is None:
                continue
            if cancel:
                with self.lock:
                    self.cancels_left -= 1
            self._storm(rng, target, cancel)

    def _storm(self, rng: random.Random, target: Started, cancel: bool) -> None:
        """Many threads tap the buttons of one analysis at once: duplicates or a shuffled mix."""
        service, n = self.stack.service, rng.randint(3, self.o.storm_threads)
        if rng.random() < 0.5:
            actions = [rng.choice(["pause", "resume", "resume", "refine"])] * n
        else:
            actions = rng.choices(["pause", "resume", "refine"], weights=[3, 4, 1], k=n)
        if cancel:
            actions += ["cancel", "cancel"]
        rng.shuffle(actions)
        generation = self.stack.runtime.store.load(target.id).refine_gen
        staggered = rng.random() < 0.5
        barrier = threading.Barrier(len(actions))

        def tap(action: str, delay: float, refine_gen: int | None) -> None:
            barrier.wait()
            if staggered:
                time.sleep(delay)  # out of order: the taps arrive spread over a few ms
            try:
                if action == "refine":
                    result = service.refine(target.id, target.actor, generation=refine_gen)
                else:
                    result = getattr(service, action)(target.id, target.actor)
            except AnalysisError as exc:
                self._violation(f"{action} of {target.id} raised {type(exc).__name__}: {exc}")
                return
            with self.lock:
                self.calls[(action, result.changed)] += 1

        threads = [
            threading.Thread(
                target=tap,
                args=(
                    action,
                    rng.uniform(0, 0.05),
                    rng.choice([None, None, generation, generation - 1, generation + 1]),
                ),
            )
            for action in actions
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _nudger(self) -> None:
        """Users come back: they resume paused analyses and refine completed ones."""
        rng = random.Random(self.rng.random())
        while not self.stop.wait(rng.uniform(0.2, 0.8)):
            action = rng.choice(["resume", "resume", "refine"])
            status = Status.PAUSED if action == "resume" else Status.COMPLETED
            target = self._pick(rng, (status,))
            if target is not None:
                result = getattr(self.stack.service, action)(target.id, target.actor)
                with self.lock:
                    self.calls[(action, result.changed)] += 1

    def _force_resumer(self) -> None:
        rng = random.Random(self.rng.random())
        while not self.stop.wait(rng.uniform(*self.o.force_every_s)):
            target = self._pick(rng, (Status.RUNNING, Status.PENDING))
            if target is None:
                continue
            results = []
            threads = [
                threading.Thread(
                    target=lambda: results.append(self.stack.service.force_resume(target.id, self.admin))
                )
                for _ in range(rng.choice([1, 1, 2, 3]))
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            with self.lock:
                self.faults["force-resume"] += len(threads)
                for result in results:
                    self.calls[("force_resume", result.changed)] += 1

    def _control_expirer(self) -> None:
        """A control key whose 24 h TTL ran out while its analysis still runs."""
        rng = random.Random(self.rng.random())
        for _ in range(self.o.control_expiries):
            if self.stop.wait(rng.uniform(0.1, 0.9) * self.o.duration_s / self.o.control_expiries):
                return
            target = self._pick(rng, (Status.RUNNING,))
            if target is not None:
                self.stack.runtime.redis.delete(self.stack.runtime.keys.control(target.id))
                with self.lock:
                    self.faults["control key expired"] += 1

    def _primary_killer(self) -> None:
        began = time.time()
        for share, replica_lag_s in self.o.primary_kills:
            if self.stop.wait(max(0.0, began + share * self.o.duration_s - time.time())):
                return
            while replica_lag_s and len(self.started) < len(self.plan):
                if self.stop.wait(0.1):  # the last start first (see ChaosOptions)
                    return
            failover = kill_primary(self.stack, replica_lag_s)
            with self.lock:
                self.failovers.append(failover)
                self.faults["primary killed"] += 1

    # --- after the faults ---------------------------------------------------------------------
    def _restore_workers(self) -> None:
        self.stack.thaw_all()
        for slot in (1, 2):
            if not self.stack.worker_alive(slot):
                self.stack.kill_worker(slot)
                self.stack.start_worker(slot, wait=False)
        for worker in self.stack.workers.values():
            worker.wait_ready(60)
        if self.stack.beat is None or not self.stack.beat.alive:
            self._violation("celery beat exited during the run")
            self.stack.start_beat()

    def _settle(self) -> None:
        """As a user would: resume what is paused (it must say why), wait for the rest."""
        store, service = self.stack.runtime.store, self.stack.service
        deadline = time.monotonic() + self.o.settle_s
        stall_s = max(30.0, 10 * self.stack.settings.recovery_bound_s)
        last_change: dict[str, tuple[int, float]] = {}
        reported: set[str] = set()
        while True:
            pending = []
            for started in self.started:
                gist = store.load(started.id)
                if gist is None:
                    if started.id not in reported:
                        reported.add(started.id)
                        lost = started.id in unconfirmed_starts(self.stack.log_dir / "driver.log")
                        self._violation(
                            f"{started.id} vanished"
                            + (" (no replica had confirmed its start: lost in a failover)" if lost else "")
                        )
                    continue
                if gist.status in FINAL:
                    continue
                pending.append(gist)
                version, since = last_change.get(gist.id, (gist.version, time.monotonic()))
                if gist.version != version:
                    since = time.monotonic()
                last_change[gist.id] = (gist.version, since)
                if gist.status == Status.PAUSED:
                    if not gist.reason and gist.id not in reported:
                        reported.add(gist.id)
                        self._violation(f"{gist.id} is paused without a reason")
                    self.user_resumes[reason_kind(gist.reason)] += 1
                    service.resume(gist.id, started.actor)
                elif time.monotonic() - since > stall_s and gist.id not in reported:
                    reported.add(gist.id)
                    self._violation(
                        f"{gist.id} is {gist.status} at seq {gist.seq} with no progress "
                        f"for {stall_s:.0f} s (stuck)"
                    )
            if not pending:
                return
            if time.monotonic() > deadline:
                for gist in pending:
                    self._violation(
                        f"{gist.id} did not finish within {self.o.settle_s:.0f} s "
                        f"after the faults: {gist.status} ({gist.reason})"
                    )
                return
            time.sleep(0.5)

    # --- checks -------------------------------------------------------------------------------
    def _check_and_summarize(
        self, chaos_began: float, chaos_ended: float, settled: float, began: float
    ) -> list[str]:
        from tests.helpers import assert_history_is_one_clean_chain

        stack, store = self.stack, self.stack.runtime.store
        r, keys = stack.runtime.redis, stack.runtime.keys
        events = events_by_analysis(r, keys.events())
        outcome: Counter[str] = Counter()
        histories = {}
        references = ReferenceRuns(self.o.data_dir)
        compared = 0
        for started in self.started:
            gist = store.load(started.id)
            if gist is None:
                continue
            history = store.history(gist.id)
            histories[gist.id] = history
            outcome[gist.status.value.lower()] += 1
            try:
                assert_history_is_one_clean_chain(history, gist.seq)
            except AssertionError as exc:
                self._violation(
                    f"{gist.id}: history is not one clean chain: {[e.seq for e in history][:40]} {exc}"
                )
            steps = sum(1 for e in events.get(gist.id, []) if e["kind"] == "step")
            if steps != len(history):
                self._violation(f"{gist.id}: {steps} step events for {len(history)} commits")
            if gist.status == Status.FAILED:
                self._violation(f"{gist.id} failed: {gist.reason}")
            if gist.status == Status.COMPLETED:
                compared += 1
                for violation in ranking_violations(gist, started.config, references):
                    self._violation(violation)
            if r.sismember(keys.active(started.actor.user_id), gist.id) and gist.status in FINAL:
                self._violation(f"{gist.id} is {gist.status} but still counts as active for its owner")
        leftover = self.stack.leases()
        if leftover:
            self._violation(f"leases still held after everything settled: {leftover}")
        stats = scan_worker_logs(stack.logs())
        self.commits = commit_times(stack.logs())
        final_seqs = {aid: {e.seq for e in history} for aid, history in histories.items()}
        self.lost, twice = lost_commits(self.commits, self.failovers, final_seqs)
        for violation in twice:
            self._violation(violation)
        window = (chaos_began, chaos_ended, settled, began)
        return summarize(self, outcome, histories, events, stats, compared, window)


def run_chaos(options: ChaosOptions) -> ChaosReport:
    return ChaosRun(options).run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--analyses", type=int)
    parser.add_argument("--duration", type=float, help="seconds of faults")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="the short variant `make test` runs")
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument("--data-dir", type=Path, help="default: the SHARED_DATA_DIR setting")
    parser.add_argument("--json", type=Path, help="also write the counts and violations there")
    args = parser.parse_args(argv)
    data_dir = args.data_dir or Settings().shared_data_dir
    if not (data_dir / "BTC_USDT-1h.csv").is_file():
        print(f"error: no market data at {data_dir}: set SHARED_DATA_DIR or --data-dir", file=sys.stderr)
        return 2
    options = (
        ChaosOptions.quick(data_dir, args.seed)
        if args.quick
        else ChaosOptions(data_dir=data_dir, seed=args.seed)
    )
    if args.analyses:
        options.analyses = max(args.analyses, 1)
    if args.duration:
        options.duration_s = args.duration
    options.keep_logs = args.keep_logs
    report = run_chaos(options)
    print(report.summary())
    if args.json:
        args.json.write_text(json.dumps({"counts": report.counts, "violations": report.violations}))
    if report.logs_kept:
        print(f"logs: {report.log_dir}")
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
