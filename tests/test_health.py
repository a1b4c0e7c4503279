"""Health: healthy / warning / critical with the reasons, from real step outcomes, a real broker
and real workers; `marketrank health` exits 0 / 1 / 2."""

import json
import os
import subprocess
import sys
import time

import pytest

from analysis.engine.step_stats import record_step
from analysis.health import BrokerFigures, Figures, Thresholds, assess, redis_figures
from analysis.models import RankingConfig
from analysis.settings import Settings
from tests.cli_runner import marketrank
from tests.servers import ROOT, free_port

CALM = BrokerFigures(queued=0, unacked=0, oldest_age_s=None, workers=["w@host"])
DEFAULTS = Thresholds.of(Settings())


def figures(**changes) -> Figures:
    base = dict(
        steps_ok=100,
        steps_failed=0,
        judge_failures=0,
        data_failures=0,
        stuck=[],
        redis_used_memory=10 << 20,
        redis_maxmemory=0,
        broker=CALM,
    )
    return Figures(**{**base, **changes})


@pytest.mark.parametrize(
    "changes, level, cause",
    [
        ({}, "healthy", None),
        ({"steps_ok": 81, "steps_failed": 19}, "healthy", None),
        ({"steps_ok": 79, "steps_failed": 21}, "warning", "step_success"),
        ({"steps_ok": 49, "steps_failed": 51}, "critical", "step_success"),
        ({"steps_ok": 1, "steps_failed": 3}, "healthy", None),  # too few steps to judge
        ({"stuck": ["abc"]}, "warning", "stuck"),
        ({"broker": BrokerFigures(3, 0, 10.0, [])}, "critical", "workers"),
        # #19 item 4: the watchdog's own worker answers pings but runs no step.
        ({"broker": BrokerFigures(0, 0, None, ["watchdog@h"], [], ["watchdog@h"])}, "critical", "workers"),
        ({"broker": BrokerFigures(0, 0, None, ["w@h"], ["w@h"], [])}, "warning", "watchdog"),
        (
            {"broker": BrokerFigures(0, 0, None, ["w@h", "watchdog@h"], ["w@h"], ["watchdog@h"])},
            "healthy",
            None,
        ),
        ({"broker": BrokerFigures(500, 2, 120.0, ["w@h"])}, "healthy", None),  # a backlog that moves
        ({"broker": BrokerFigures(5, 2, 600.0, ["w@h"])}, "warning", "queue"),
        ({"broker": BrokerFigures(5, 2, 3600.0, ["w@h"])}, "critical", "queue"),
        ({"redis_used_memory": 85, "redis_maxmemory": 100}, "warning", "redis_memory"),
        ({"redis_used_memory": 96, "redis_maxmemory": 100}, "critical", "redis_memory"),
        ({"judge_failures": 1}, "warning", "judge"),
        ({"data_failures": 5}, "critical", "data"),
    ],
)
def test_levels_follow_the_documented_thresholds(changes, level, cause):
    health = assess(figures(**changes), DEFAULTS)
    assert health.level == level and health.exit_code == {"healthy": 0, "warning": 1, "critical": 2}[level]
    assert [r.cause for r in health.reasons] == ([cause] if cause else [])


def test_the_worst_reason_sets_the_level_and_every_reason_is_listed():
    health = assess(figures(stuck=["a", "b"], judge_failures=7), DEFAULTS)
    assert health.level == "critical"
    assert {(r.cause, r.level) for r in health.reasons} == {("stuck", "warning"), ("judge", "critical")}


HEALTH_DB = 7  # a database of its own: the session worker's steps are not counted here


def test_steps_are_counted_as_they_run_and_failures_by_kind(redis_url, queue, actor):
    from analysis.engine.runtime import Runtime
    from analysis.service import AnalysisService
    from analysis.settings import Settings
    from tests.test_recovery import score_config

    runtime = Runtime(Settings(redis_url=redis_url.rsplit("/", 1)[0] + f"/{HEALTH_DB}"))
    runtime.redis.flushdb()
    local_service = AnalysisService(runtime.store, queue)
    good = local_service.start(score_config("demo"), actor)
    steps = len(queue.drain(runtime))
    bad = local_service.start(score_config("faulty:error=1,seed=5:demo"), actor)
    assert queue.drain(runtime) == ["paused"]
    counted = redis_figures(runtime.redis, runtime.keys)
    assert counted["steps_ok"] == steps == len(runtime.store.history(good.id))
    assert (counted["steps_failed"], counted["data_failures"], counted["judge_failures"]) == (1, 1, 0)
    assert local_service.get(bad.id, actor).status.value == "PAUSED"
    # An hour later they no longer count.
    later = redis_figures(runtime.redis, runtime.keys, now=time.time() + 3660)
    assert later["steps_ok"] == later["steps_failed"] == 0


def marketrank_process(*args: str, **env: str) -> subprocess.CompletedProcess:
    """A process of its own: a bad setting is refused at start-up, before `main` runs."""
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_health_with_real_workers_reads_the_figures_and_exits_with_the_level(worker, runtime):
    record_step(runtime.redis, runtime.keys, "judge", now=time.time())
    done = marketrank("health", "--json")
    document = json.loads(done.stdout)
    assert done.returncode == {"healthy": 0, "warning": 1, "critical": 2}[document["level"]]
    assert document["level"] in ("warning", "critical")  # at least the judge failure
    assert any(w.startswith("session@") for w in document["figures"]["broker"]["workers"])
    assert "judge" in {r["cause"] for r in document["reasons"]}
    assert document["figures"]["judge_failures"] >= 1
    text = marketrank("health").stdout
    assert text.startswith(f"health: {document['level']}") and "workers: " in text


def test_a_tuned_threshold_changes_the_verdict_of_cli_health(worker, redis_url):
    """Keys of their own (KEY_PREFIX): one judge failure in the last hour, nothing else."""
    from analysis.engine.runtime import Runtime

    prefix = f"tune{time.time_ns()}:"
    tuned_runtime = Runtime(Settings(redis_url=redis_url, key_prefix=prefix))
    record_step(tuned_runtime.redis, tuned_runtime.keys, "judge", now=time.time())
    default = marketrank("health", "--json", KEY_PREFIX=prefix)
    tuned = marketrank("health", "--json", KEY_PREFIX=prefix, HEALTH_FAILURES_CRITICAL="1")
    judge = [
        {r["cause"]: r["level"] for r in json.loads(done.stdout)["reasons"]}["judge"]
        for done in (default, tuned)
    ]
    assert judge == ["warning", "critical"]  # by default 5 failures an hour are critical
    assert json.loads(tuned.stdout)["level"] == "critical" and tuned.returncode == 2


def test_a_tuned_memory_threshold_moves_the_level_of_the_same_figures(monkeypatch):
    monkeypatch.setenv("HEALTH_MEMORY_WARNING", "0.9")
    monkeypatch.setenv("HEALTH_MEMORY_CRITICAL", "0.99")
    tuned = Thresholds.of(Settings())
    for used, default_level, tuned_level in (
        (85, "warning", "healthy"),
        (96, "critical", "warning"),
        (99, "critical", "critical"),
    ):
        same = figures(redis_used_memory=used, redis_maxmemory=100)
        assert (assess(same, DEFAULTS).level, assess(same, tuned).level) == (default_level, tuned_level)


BAD_THRESHOLDS = {
    "negative": (
        {"HEALTH_QUEUE_AGE_WARNING_S": "-5"},
        "error: bad setting HEALTH_QUEUE_AGE_WARNING_S=-5: Input should be greater than 0",
    ),
    "not a number": ({"HEALTH_MIN_STEPS": "five"}, "error: bad setting HEALTH_MIN_STEPS=five: "),
    "a share over 1": ({"HEALTH_MEMORY_CRITICAL": "95"}, "error: bad setting HEALTH_MEMORY_CRITICAL=95: "),
    "inverted success": (
        {"HEALTH_SUCCESS_WARNING": "0.5", "HEALTH_SUCCESS_CRITICAL": "0.7"},
        "error: bad setting: HEALTH_SUCCESS_CRITICAL (0.7) must be at most HEALTH_SUCCESS_WARNING (0.5)",
    ),
    "inverted queue age": (
        {"HEALTH_QUEUE_AGE_WARNING_S": "1800", "HEALTH_QUEUE_AGE_CRITICAL_S": "300"},
        "error: bad setting: HEALTH_QUEUE_AGE_CRITICAL_S (300.0) must be at least "
        "HEALTH_QUEUE_AGE_WARNING_S (1800.0)",
    ),
}


@pytest.mark.parametrize("env, message", BAD_THRESHOLDS.values(), ids=BAD_THRESHOLDS.keys())
@pytest.mark.slow
def test_a_bad_threshold_is_refused_in_one_line_naming_the_setting(env, message):
    done = marketrank_process("health", **env)
    assert (done.returncode, done.stdout) == (2, "")
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith(message), done.stderr


def test_cli_health_without_redis_is_critical():
    url = f"redis://127.0.0.1:{free_port()}/0"
    done = marketrank("health", REDIS_URL=url)
    lines = done.stdout.splitlines()
    assert done.returncode == 2 and done.stderr == ""
    assert lines[0] == "health: critical" and lines[1].startswith(
        f"  critical: cannot reach Redis at {url} ("
    )


def test_a_queue_that_does_not_move_and_no_worker_are_reported(redis_url, runtime):
    """A broker of its own with no worker: the step sent 11 minutes ago waits in the queue."""
    from analysis.service import AnalysisService
    from analysis.settings import Settings
    from tasks.celery_app import make_celery
    from tasks.dispatcher import CeleryDispatcher
    from tasks.health import check_health
    from tasks.ops import BrokerOps

    app = make_celery(Settings(redis_url=redis_url.rsplit("/", 1)[0] + f"/{QUEUE_DB}"))
    ops = BrokerOps(app)
    ops.broker.flushdb()
    sent = time.time()
    CeleryDispatcher(app).enqueue_step("abcdefghij", "c0ffee12c0ffee12", 3)
    CeleryDispatcher(app).enqueue_step("abcdefghij", "c0ffee12c0ffee12", 4)
    later = sent + 660
    assert 659 <= ops.oldest_age_s(later) <= 661
    health = check_health(
        runtime, AnalysisService(runtime.store, CeleryDispatcher(app)), ops, ping_timeout=0.5, now=later
    )
    reasons = {r.cause: r for r in health.reasons}
    assert health.level == "critical" and reasons["workers"].level == "critical"
    assert reasons["queue"].level == "warning" and reasons["queue"].text.startswith(
        "2 steps queued, the oldest for 11 min"
    )


QUEUE_DB = 11


@pytest.mark.slow
def test_a_stack_whose_only_worker_is_the_watchdogs_is_critical(worker_log_dir):
    """#19 item 4: every step worker dead, the Procfile's `watchdog` worker alive and answering
    pings: `marketrank health` says critical (exit 2), not healthy. A Redis server of its own:
    Celery's pings go over pub/sub, which is not per database, so a step worker of another test
    on the shared server would answer them too."""
    from tests.servers import RedisServer, Worker

    server = RedisServer().start()
    url = server.url
    env = {**os.environ, "REDIS_URL": url}
    watchdog = Worker(
        env, "watchdog-only", concurrency=1, log_dir=worker_log_dir, queues="marketrank.watchdog"
    ).start()
    try:
        # A process of its own: Celery's app takes its broker from REDIS_URL when it loads.
        done = marketrank_process("health", "--json", REDIS_URL=url)
    finally:
        watchdog.stop()
        server.stop()
    document = json.loads(done.stdout)
    reasons = {r["cause"]: r for r in document["reasons"]}
    assert (done.returncode, document["level"]) == (2, "critical"), document
    assert reasons["workers"]["text"].startswith("no worker consumes the steps' queue")
    assert "watchdog" not in reasons  # it is there; what is missing is a step worker
    assert any(w.startswith("watchdog-only@") for w in document["figures"]["broker"]["watchdog_workers"])


def test_a_stack_without_a_watchdog_worker_warns_that_lost_steps_are_not_recovered(worker):
    """The session's worker consumes only the steps' queue: steps run, recovery does not."""
    done = marketrank("health", "--json")
    reasons = {r["cause"]: r for r in json.loads(done.stdout)["reasons"]}
    assert reasons["watchdog"] == {
        "level": "warning",
        "cause": "watchdog",
        "text": "no worker consumes the watchdog's queue: lost steps are not being recovered",
    }
    assert "workers" not in reasons
    assert "workers: session@" in marketrank("health").stdout
