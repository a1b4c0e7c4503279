"""Health of the whole product in one reading: healthy, warning or critical, with the reasons.

Fronts (`marketrank health`, the bot's /health, the alerts) only format what `assess` answers.
What needs the broker (queue depth and the age of its oldest message, which workers answer a
ping) is measured by the tasks layer and handed in; what lives in Redis is read here.

Thresholds (why each level; the figures are the defaults, settings `HEALTH_*`, docs/operations.md):
- steps over the last hour: success below 80 % is a warning, below 50 % critical (judged from 5
  steps on; fewer say nothing either way);
- analyses stuck (should run, no lease, no progress past the watchdog grace, or given up): warning;
- no worker answering, or none consuming the steps' queue: critical (nothing runs; the
  watchdog's own worker answers pings but runs no step); no worker consuming the watchdog's queue:
  warning (steps run, but a step lost with its worker is not recovered; what it leaves behind
  shows as stuck); a queued message older than 5 minutes: warning,
  older than 30 minutes: critical (a backlog alone is not a fault, a queue that does not move is);
- Redis memory at 80 % of maxmemory: warning, 95 %: critical (no maxmemory: not judged);
- judge or market-data (exchange) failures that paused analyses in the last hour: warning, 5 or
  more: critical.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import redis

from analysis.db.keys import Keys
from analysis.engine.step_stats import FAILED, step_counts
from analysis.settings import Settings

LEVELS = ("healthy", "warning", "critical")
EXIT_CODES = {"healthy": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class Thresholds:
    """Where warning and critical begin; an operator tunes them with the `HEALTH_*` settings."""

    success_warning: float
    success_critical: float
    min_steps: int
    queue_age_warning_s: float
    queue_age_critical_s: float
    memory_warning: float
    memory_critical: float
    failures_critical: int

    @classmethod
    def of(cls, settings: Settings) -> "Thresholds":
        return cls(
            settings.health_success_warning,
            settings.health_success_critical,
            settings.health_min_steps,
            settings.health_queue_age_warning_s,
            settings.health_queue_age_critical_s,
            settings.health_memory_warning,
            settings.health_memory_critical,
            settings.health_failures_critical,
        )


@dataclass(frozen=True)
class BrokerFigures:
    """Measured by the tasks layer (Celery): `workers` None when nobody asked. `step_workers` and
    `watchdog_workers`: those of `workers` consuming the steps' and the watchdog's queue (None:
    not known, only whether workers answer is judged)."""

    queued: int
    unacked: int
    oldest_age_s: float | None
    workers: list[str] | None
    step_workers: list[str] | None = None
    watchdog_workers: list[str] | None = None


@dataclass(frozen=True)
class Figures:
    steps_ok: int
    steps_failed: int
    judge_failures: int
    data_failures: int
    stuck: list[str]
    redis_used_memory: int
    redis_maxmemory: int
    broker: BrokerFigures

    @property
    def success_rate(self) -> float | None:
        total = self.steps_ok + self.steps_failed
        return self.steps_ok / total if total else None


@dataclass(frozen=True)
class Reason:
    level: str
    cause: str  # a stable name, one per kind of trouble (alerts are throttled per cause)
    text: str


@dataclass(frozen=True)
class Health:
    level: str
    reasons: list[Reason] = field(default_factory=list)
    figures: Figures | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.level]

    def to_dict(self) -> dict:
        return {
            "level": self.level,
            "reasons": [asdict(r) for r in self.reasons],
            "figures": asdict(self.figures) if self.figures else None,
        }


def assess(f: Figures, t: Thresholds) -> Health:
    reasons: list[Reason] = []

    def add(level: str, cause: str, text: str) -> None:
        reasons.append(Reason(level, cause, text))

    rate = f.success_rate
    total = f.steps_ok + f.steps_failed
    if rate is not None and total >= t.min_steps and rate < t.success_warning:
        add(
            "critical" if rate < t.success_critical else "warning",
            "step_success",
            f"steps succeeded {rate:.0%} of {total} in the last hour (warning < "
            f"{t.success_warning * 100:g} %, critical < {t.success_critical * 100:g} %)",
        )
    if f.stuck:
        shown = ", ".join(f.stuck[:5]) + (" ..." if len(f.stuck) > 5 else "")
        add("warning", "stuck", f"{len(f.stuck)} analyses stuck: {shown}")
    b = f.broker
    if b.workers is not None and not b.workers:
        add("critical", "workers", "no worker answers a ping: no step runs")
    elif b.workers is not None and b.step_workers is not None and not b.step_workers:
        add(
            "critical",
            "workers",
            f"no worker consumes the steps' queue ({len(b.workers)} answer, none runs steps): no step runs",
        )
    if b.workers and b.watchdog_workers is not None and not b.watchdog_workers:
        add(
            "warning",
            "watchdog",
            "no worker consumes the watchdog's queue: lost steps are not being recovered",
        )
    if b.oldest_age_s is not None and b.oldest_age_s > t.queue_age_warning_s:
        level = "critical" if b.oldest_age_s > t.queue_age_critical_s else "warning"
        add(level, "queue", f"{b.queued} steps queued, the oldest for {b.oldest_age_s / 60:.0f} min")
    if f.redis_maxmemory:
        share = f.redis_used_memory / f.redis_maxmemory
        if share >= t.memory_warning:
            add(
                "critical" if share >= t.memory_critical else "warning",
                "redis_memory",
                f"Redis uses {share:.0%} of its maxmemory ({f.redis_used_memory >> 20} of "
                f"{f.redis_maxmemory >> 20} MiB)",
            )
    for cause, count, what in (
        ("judge", f.judge_failures, "LLM judge"),
        ("data", f.data_failures, "market data (exchange)"),
    ):
        if count:
            add(
                "critical" if count >= t.failures_critical else "warning",
                cause,
                f"{count} steps failed on the {what} in the last hour",
            )
    level = max((r.level for r in reasons), key=LEVELS.index, default="healthy")
    return Health(level, reasons, f)


def redis_figures(client: redis.Redis, keys: Keys, *, now: float | None = None) -> dict:
    """The Redis-side figures: step outcomes over the last hour and memory."""
    now = time.time() if now is None else now
    counts = step_counts(client, keys, now=now)
    memory = client.info("memory")
    return {
        "steps_ok": counts["ok"],
        "steps_failed": sum(counts[k] for k in FAILED),
        "judge_failures": counts["judge"],
        "data_failures": counts["data"],
        "redis_used_memory": int(memory.get("used_memory", 0)),
        "redis_maxmemory": int(memory.get("maxmemory", 0)),
    }


def unreachable(url: str, error: str) -> Health:
    """Redis itself does not answer: nothing works."""
    return Health("critical", [Reason("critical", "redis", f"cannot reach Redis at {url} ({error})")])


def describe(health: Health) -> str:
    """The text both fronts show."""
    lines = [f"health: {health.level}"]
    lines += [f"  {r.level}: {r.text}" for r in health.reasons]
    f = health.figures
    if f is not None:
        rate = "n/a" if f.success_rate is None else f"{f.success_rate:.0%}"
        b = f.broker
        workers = "not asked" if b.workers is None else (", ".join(b.workers) or "none")
        if b.step_workers is not None and b.watchdog_workers is not None:
            workers += (
                f" (steps: {', '.join(b.step_workers) or 'none'}; watchdog: "
                f"{', '.join(b.watchdog_workers) or 'none'})"
            )
        oldest = "-" if b.oldest_age_s is None else f"{b.oldest_age_s:.0f} s"
        memory = f"{f.redis_used_memory >> 20} MiB" + (
            f" of {f.redis_maxmemory >> 20} MiB" if f.redis_maxmemory else " (no maxmemory)"
        )
        lines += [
            f"  steps last hour: {f.steps_ok} ok, {f.steps_failed} failed ({rate} success)",
            f"  queue: {b.queued} queued, {b.unacked} running or reserved, oldest {oldest}",
            f"  workers: {workers}",
            f"  stuck analyses: {len(f.stuck)}",
            f"  redis memory: {memory}",
            f"  judge failures: {f.judge_failures}, market-data failures: {f.data_failures}",
        ]
    return "\n".join(lines)
