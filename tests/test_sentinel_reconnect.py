"""A command in flight when the Redis primary dies is retried on the replica Sentinel promotes, not
against the dead primary's address for the whole retry budget. redis-py's Sentinel connection asks
the sentinels only in connect(); a retried command reconnects without it (redis/redis-py#3874).
The chaos run found it: a watchdog pass in flight at the kill retried the dead address, then the
old primary back as a replica ("READONLY"), until its 20 s time limit; so would a step's commit."""

import threading
import time

import pytest

from analysis.engine.runtime import Runtime
from analysis.settings import Settings
from tests.sentinel_cluster import MASTER, SentinelCluster


@pytest.mark.e2e
def test_a_command_in_flight_when_the_primary_dies_completes_on_the_promoted_replica():
    cluster = SentinelCluster()
    try:
        settings = Settings(
            redis_url="redis://127.0.0.1:1/0", redis_sentinels=cluster.addresses, redis_sentinel_master=MASTER
        )
        worker_client = Runtime(settings).redis  # the workers' client: 20 retries, backing off to 2 s
        other_client = Runtime(settings).redis
        answers: dict[str, object] = {}

        def wait_for_work() -> None:  # blocked in a command on the primary when it dies
            try:
                answers["popped"] = worker_client.blpop(["work"], timeout=40)
            except Exception as exc:  # what the worker would see: the command failed
                answers["popped"] = f"{type(exc).__name__}: {exc}"
            answers["at"] = time.time()

        waiter = threading.Thread(target=wait_for_work, daemon=True)
        waiter.start()
        deadline = time.monotonic() + 10
        while not any(c["cmd"] == "blpop" for c in other_client.client_list(_type="normal")):
            assert time.monotonic() < deadline, "the command never reached the primary"
            time.sleep(0.02)
        killed_at = cluster.kill_primary()
        cluster.wait_promoted()
        other_client.rpush("work", "step 7")  # on the promoted replica
        waiter.join(60)
        assert answers["popped"] == (b"work", b"step 7"), answers
        assert answers["at"] - killed_at < 15, f"answered {answers['at'] - killed_at:.1f} s after the kill"
    finally:
        cluster.cleanup()
