"""Step outcomes counted per minute, for health: how many steps committed and how many failed
(and why) over the last hour.

Outcomes: `ok` (committed), `lost` (work done but not committed: lease lost, fenced out),
`judge` (the LLM judge gave no valid answer after its retries), `data` (market data / exchange
unavailable after retries), `config` (a config that cannot work), `internal` (a bug). Counters
live in `{p}steps:{minute}` hashes kept two hours, so a reading costs at most 60 HGETALLs.
"""

from collections import Counter

import redis

from analysis.db.keys import Keys
from analysis.metrics import queue_increments, step_increments

KEEP_S = 2 * 3600
FAILED = ("lost", "judge", "data", "config", "internal")


def record_step(
    client: redis.Redis, keys: Keys, outcome: str, *, now: float, duration_s: float | None = None
) -> None:
    """Count the outcome for health and, with the step's duration, for Prometheus (same trip)."""
    key = keys.step_stats(int(now // 60))
    with client.pipeline(transaction=False) as pipe:
        pipe.hincrby(key, outcome, 1)
        pipe.expire(key, KEEP_S)
        if duration_s is not None:
            queue_increments(pipe, keys.metrics(), step_increments(outcome, duration_s))
        pipe.execute()


def step_counts(client: redis.Redis, keys: Keys, *, now: float, window_s: float = 3600) -> Counter:
    """Outcomes over the last `window_s` seconds (whole minutes)."""
    last = int(now // 60)
    minutes = range(last - int(window_s // 60) + 1, last + 1)
    with client.pipeline(transaction=False) as pipe:
        for minute in minutes:
            pipe.hgetall(keys.step_stats(minute))
        rows = pipe.execute()
    counts: Counter = Counter()
    for row in rows:
        for name, value in row.items():
            counts[name.decode() if isinstance(name, bytes) else name] += int(value)
    return counts
