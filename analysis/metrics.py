"""Counters for Prometheus, kept in Redis so every process on every host adds to the same ones.

One hash, `Keys.metrics` (no expiry: counters only grow, as Prometheus expects; a reset is seen
as a counter restart). Every event is one HINCRBY, sent with a write the event makes anyway (the
step's health counters, the LLM spend) so a step pays no extra round trip. `tasks/metrics.py`
turns the hash, the live index and the broker into the exposition (docs/operations.md lists every
metric).

Fields: `steps_committed`, `steps_failed:<kind>` (analysis/engine/step_stats.py's outcomes),
`step_seconds_bucket:<le>` (the smallest bucket the step fits in, or +Inf: one field per step;
the collector makes them cumulative, as Prometheus buckets are), `step_seconds_sum_ms`,
`step_seconds_count`, `llm:<name>` (what the judge spent: calls, prompt_tokens,
completion_tokens, retries, cache_hits), `candle_fetches`, `candle_cache_hits`, `alerts_sent`,
`watchdog_reenqueues`.
"""

from typing import Any

STEP_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def bucket_field(le: float) -> str:
    return f"step_seconds_bucket:{le:g}"


def step_increments(outcome: str, duration_s: float) -> dict[str, int]:
    """The fields one finished step adds 1 (or its milliseconds) to: its outcome, the smallest
    histogram bucket it fits in (none past the last: only the count), the sum and the count.
    Four HINCRBYs, whatever the number of buckets."""
    fields = {
        "steps_committed" if outcome == "ok" else f"steps_failed:{outcome}": 1,
        "step_seconds_count": 1,
        "step_seconds_sum_ms": int(round(duration_s * 1000)),
    }
    fitting = [le for le in STEP_BUCKETS_S if duration_s <= le]
    if fitting:
        fields[bucket_field(fitting[0])] = 1
    return fields


def cumulative_buckets(counters: dict[str, int]) -> list[tuple[str, int]]:
    """Prometheus's buckets (each counts the steps at most `le` long) from the per-bucket fields."""
    running, buckets = 0, []
    for le in STEP_BUCKETS_S:
        running += counters.get(bucket_field(le), 0)
        buckets.append((f"{le:g}", running))
    return buckets


def queue_increments(pipe: Any, key: str, fields: dict[str, int]) -> None:
    """HINCRBY each field on a pipeline (or client)."""
    for name, amount in fields.items():
        pipe.hincrby(key, name, amount)


def read_counters(client: Any, key: str) -> dict[str, int]:
    raw = client.hgetall(key)
    return {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}
