"""A load of llm analyses on a private stack: real workers (one or several host names), a real
beat and the watchdog's own worker, and the real openai client against a local judge that takes
its time. tests/test_load.py checks a backlog pauses nothing; `make bench-load` measures it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from analysis.config_factory import RankingConfigFactory
from analysis.models import Status
from analysis.service import Actor
from tests.openai_server import OpenAIServer
from tests.servers import Worker
from tests.stack import FAST_TIMINGS, Stack

MARKETS = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "DOGE/USDT", "ADA/USDT"]
STRENGTHS = {symbol: float(len(MARKETS) - i) for i, symbol in enumerate(MARKETS)}
LOAD_TIMINGS = {
    **FAST_TIMINGS,
    "WATCHDOG_GRACE_S": "4",
    "WATCHDOG_MAX_ATTEMPTS": "2",
    "WATCHDOG_INTERVAL_S": "1",
    "MAX_STARTS_PER_HOUR": "100000",
}
FINAL = (Status.COMPLETED, Status.CANCELLED, Status.FAILED)
FINAL_BYTES = tuple(s.value.encode() for s in FINAL)


def statuses(rt, ids: list[str]) -> list[bytes]:
    with rt.redis.pipeline(transaction=False) as pipe:
        for analysis_id in ids:
            pipe.hget(rt.keys.gist(analysis_id), "status")
        return pipe.execute()


@dataclass
class LlmLoad:
    analyses: int
    completed: int
    paused: list[str]
    wall_s: float
    longest_queue: int
    watchdog_kicks: int
    watchdog_queued_passes: int
    clean_chains: bool
    steps: int
    hosts: list[str]
    longest_wait_s: float  # from a commit to the start of the next step of that analysis


def llm_env(judge: OpenAIServer, grace_s: float, attempts: int) -> dict[str, str]:
    return {
        **LOAD_TIMINGS,
        "WATCHDOG_GRACE_S": str(grace_s),
        "WATCHDOG_MAX_ATTEMPTS": str(attempts),
        "OPENAI_BASE_URL": judge.base_url,
        "OPENAI_API_KEY": "sk-bench",
        "OPENAI_MODEL": "judge-small",
        "OPENAI_TIMEOUT_S": str(judge.latency_s * 4 + 5),
        "OPENAI_BACKOFF_BASE_S": "0.05",
        "OPENAI_BACKOFF_MAX_S": "0.5",
        "TASK_TIME_LIMIT_S": "50",
    }


def run_llm_load(
    *,
    analyses: int,
    latency_s: float,
    grace_s: float = 4,
    attempts: int = 2,
    hosts: int = 1,
    concurrency: int = 2,
    timeout_s: float = 900,
    log_dir: str | None = None,
) -> LlmLoad:
    """`analyses` llm analyses at once on `hosts` workers (each `concurrency` processes, its own
    host name) with a judge of `latency_s` per answer and the watchdog on its own worker."""
    with OpenAIServer(strengths=STRENGTHS, latency_s=latency_s) as judge:
        stack = Stack(llm_env(judge, grace_s, attempts), name="load", log_dir=log_dir, appendonly=False)
        try:
            for i in range(hosts):
                worker = Worker(
                    stack.env,
                    f"load{i}",
                    concurrency=concurrency,
                    log_dir=str(stack.log_dir),
                    hostname=f"host-{'abc'[i % 3]}{i // 3 or ''}",
                )
                stack.workers[i + 1] = worker
                stack.all_workers.append(worker)
                worker.start()
            stack.start_beat()
            factory = RankingConfigFactory(stack.settings, stack.runtime.provider, llm_configured=True)
            ids = []
            started = time.time()
            for i in range(analyses):
                config = factory.create_ranking_config(
                    symbols=MARKETS, top_k=2, strategy="llm", prompt=f"strongest trend, load {i}", target=0.8
                )
                ids.append(stack.service.start(config, Actor(f"trader-{i}")).id)
            longest = 0
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                longest = max(longest, stack.runtime.redis.llen("marketrank"))
                if all(s in FINAL_BYTES + (b"PAUSED",) for s in statuses(stack.runtime, ids)):
                    break
                time.sleep(0.2)
            wall = time.time() - started
            gists = [stack.runtime.store.load(i) for i in ids]
            clean, steps, worked_on, longest_wait = True, 0, set(), 0.0
            for gist in gists:
                history = stack.runtime.store.history(gist.id)
                steps += len(history)
                worked_on |= {e.worker.split("@")[-1] for e in history}
                seqs = [e.seq for e in history]
                longest_wait = max(
                    [longest_wait] + [b.started_at - a.finished_at for a, b in zip(history, history[1:])]
                )
                overlaps = any(b.started_at < a.finished_at - 1e-6 for a, b in zip(history, history[1:]))
                clean &= seqs == list(range(gist.seq + 1)) and not overlaps
            log = stack.watchdog_worker.log_path.read_text(errors="replace")
            # the task's return value: {'kick': n, 'gave_up': n, 'expired': n, 'queued': n}
            kicks = sum(int(n) for n in re.findall(r"'kick': (\d+)", log))
            queued = sum(int(n) for n in re.findall(r"'queued': (\d+)", log))
            return LlmLoad(
                analyses,
                sum(g.status == Status.COMPLETED for g in gists),
                [f"{g.id}: {g.reason}" for g in gists if g.status == Status.PAUSED],
                wall,
                longest,
                kicks,
                queued,
                clean,
                steps,
                sorted(worked_on),
                longest_wait,
            )
        finally:
            stack.close()
