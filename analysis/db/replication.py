"""Wait, after a trader's action, for a replica to hold it: with Redis failover (REDIS_SENTINELS)
a write the primary answered but had not yet sent to its replica is gone after the switch, and a
start or a pause the trader saw acknowledged would vanish. Step commits do not wait: a lost one is re-run
once, fenced (docs/operations.md "Redis failover (Sentinel)")."""

from __future__ import annotations

import logging
import time

import redis

logger = logging.getLogger(__name__)


def wait_for_replica(client: redis.Redis, probe_key: str, wait_ms: int, what: str) -> bool:
    """True once a replica holds every write made before this call (a probe write and WAIT on
    one connection: the replication stream is one ordered log, so the probe's offset covers
    writes other connections made earlier). False, with a warning, after `wait_ms`; 0: no wait."""
    if wait_ms <= 0:
        return True
    started = time.monotonic()
    with client.pipeline(transaction=False) as pipe:
        pipe.set(probe_key, repr(time.time()))
        pipe.execute_command("WAIT", 1, wait_ms)
        _, replicas = pipe.execute()
    if int(replicas) >= 1:
        return True
    logger.warning(
        "%s is on the primary but no replica confirmed it within %d ms (%.0f ms): a "
        "failover now would lose it",
        what,
        wait_ms,
        1000 * (time.monotonic() - started),
    )
    return False
