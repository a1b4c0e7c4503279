"""Assertions about analyses that many tests share."""

import threading
import time

from analysis.models import Gist, HistoryEntry, RankingConfig, Status


def noop_config(steps: int, markets: tuple[str, ...] = ("BTC/USDT", "ETH/USDT")) -> RankingConfig:
    """A config of the `noop:<steps>` strategy (tests/doubles): `steps` cheap steps, for protocol
    tests."""
    return RankingConfig(
        markets=list(markets), timeframe="1h", strategy=f"noop:{steps}", top_k=1, target_confidence=0.8
    )


def assert_history_is_one_clean_chain(history: list[HistoryEntry], last_seq: int) -> None:
    """Every sequence 0..last_seq committed exactly once, in order, and no two steps overlap."""
    assert [entry.seq for entry in history] == list(range(last_seq + 1))
    for before, after in zip(history, history[1:]):
        assert after.started_at >= before.finished_at - 1e-6, (before, after)


def wait_for_status(service, analysis_id, actor, statuses, timeout: float = 60) -> Gist:
    wanted = {Status(s) for s in statuses}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        gist = service.get(analysis_id, actor)
        if gist.status in wanted:
            return gist
        time.sleep(0.05)
    raise AssertionError(f"{analysis_id} is {gist.status} ({gist.reason}), expected {statuses}")


def wait_for_idle_broker(timeout: float = 30) -> None:
    """Wait until no step message waits in the broker or runs on a worker (acks are late, so a
    running step's message stays unacknowledged until it ends). After that no step can start
    until someone enqueues one: what a test of "nothing moves while paused" waits for."""
    from tasks.ops import default_ops

    ops = default_ops()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(d.queued == 0 and d.unacked == 0 for d in ops.queue_depths().values()):
            return
        time.sleep(0.02)
    raise AssertionError(f"the broker still holds step messages after {timeout}s: {ops.queue_depths()}")


def ranking(gist: Gist) -> list[tuple[str, float]]:
    return [(item.symbol, item.score) for item in gist.result]


# A running worker's kombu refreshes the deadlines of its remote-control bindings on its own
# clock; that key says nothing about what an action under test wrote.
WORKER_HEARTBEAT_KEYS = {b"_kombu.binding_deadlines"}


def redis_snapshot(client) -> dict[bytes, bytes]:
    """Every key and its serialized value: to prove an action wrote nothing."""
    return {key: client.dump(key) for key in client.scan_iter(count=1000) if key not in WORKER_HEARTBEAT_KEYS}


def all_at_once(n: int, call) -> list:
    """Run `call` in n threads released together (a storm of duplicate taps); their results."""
    barrier = threading.Barrier(n)
    results = []

    def run():
        barrier.wait()
        results.append(call())

    threads = [threading.Thread(target=run) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


class QueueDispatcher:
    """A StepDispatcher that keeps enqueued steps; `drain` runs them in this process like the
    Celery task does, so a test can stage each race exactly (thread-safe)."""

    def __init__(self):
        self.queue: list[tuple[str, str, int]] = []
        self.lock = threading.Lock()

    def enqueue_step(self, analysis_id, chain, seq):
        with self.lock:
            self.queue.append((analysis_id, chain, seq))

    def drain(self, rt, limit=10_000) -> list[str]:
        from analysis.engine.step_runner import run_step

        decisions = []
        while self.queue and limit:
            limit -= 1
            analysis_id, chain, seq = self.queue.pop(0)
            decisions.append(run_step(rt, analysis_id, chain, seq).decision)
            if decisions[-1] == "continue":
                self.enqueue_step(analysis_id, chain, seq + 1)
        return decisions
