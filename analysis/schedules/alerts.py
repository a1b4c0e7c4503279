"""Alerts that do not flicker: which markets a `notify=changes` schedule says entered or left its
top K in a run, with a hysteresis band and a cooldown.

A market is *in* once it ranks within K, and stays in until it ranks beyond K + b (b =
SCHEDULE_HYSTERESIS): a market that wobbles between K and K + b changes nothing. What the trader
was last told is kept apart from what is in: a market whose state differs from what was told is
announced, unless it was announced less than SCHEDULE_ALERT_COOLDOWN_RUNS runs ago; then the
announcement waits, and if the market is back where it was told to be by then, nothing is said.
So a market that enters and leaves within the cooldown is announced once, not twice.

Like what changed between runs (changes.py), this is computed when read, from the schedule's
chain of completed runs (each run's `schedule_prev`), replayed over the last
`lookback_runs(cooldown)` runs: the first of them is taken as told. Nothing is written when a run completes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from analysis.models import Gist, Status


def lookback_runs(cooldown: int) -> int:
    """Runs replayed for one run's alerts: enough for a cooldown to have begun and ended."""
    return 2 * cooldown + 2


def universe_ranks(gist: Gist) -> dict[str, int]:
    """Every ranked market's rank: the reported top K first, then the other markets in the order
    of the strategy's own measure (score: latest composite score; llm: chance of being in the top
    K). Only the top K is in the result; the hysteresis needs to see past it."""
    ranks = {item.symbol: item.rank for item in gist.result}
    scores: dict[str, list[float]] = dict(gist.state.get("scores") or {})  # type: ignore[call-overload]
    measure = {s: v[0] for s, v in scores.items()} if scores else gist.p_in_top_k
    rest = sorted((s for s in measure if s not in ranks), key=lambda s: (-measure[s], s))
    start = max(ranks.values(), default=0)
    ranks.update({symbol: start + i + 1 for i, symbol in enumerate(rest)})
    return ranks


def announcements(
    rankings: Sequence[Mapping[str, int]], k: int, band: int, cooldown: int
) -> dict[str, list[str]]:
    """What the last of these consecutive runs (oldest first) announces: `entered` (now in, the
    trader was told out) and `left` (now out, told in), each in the order of this run's ranks.
    A market missing from a run's ranking is beyond any band."""
    if len(rankings) < 2:
        return {"entered": [], "left": []}
    first = rankings[0]
    held = {s for s, rank in first.items() if rank <= k}
    told, last_told = set(held), dict[str, int]()
    said: dict[str, list[str]] = {"entered": [], "left": []}
    for index, ranks in enumerate(rankings[1:], start=1):
        held = {s for s in held if ranks.get(s, k + band + 1) <= k + band}
        held |= {s for s, rank in ranks.items() if rank <= k}
        said = {"entered": [], "left": []}
        for symbol in sorted(held ^ told, key=lambda s: (ranks.get(s, 10**9), s)):
            if index - last_told.get(symbol, -(10**9)) <= cooldown:
                continue  # announced too recently: wait; nothing is said if it comes back
            said["entered" if symbol in held else "left"].append(symbol)
            told ^= {symbol}
            last_told[symbol] = index
    return said


def chain_of_runs(store, gist: Gist, runs: int) -> list[Gist]:
    """This completed run and up to `runs - 1` completed runs before it (oldest first), as long as
    they are still stored (GIST_TTL_S)."""
    chain = [gist]
    while len(chain) < runs and chain[-1].schedule_prev:
        previous = store.load(chain[-1].schedule_prev)
        if previous is None or previous.status != Status.COMPLETED or not previous.result:
            break
        chain.append(previous)
    return chain[::-1]


def run_alerts(store, gist: Gist, band: int, cooldown: int) -> dict[str, Any]:
    """The alerts of a completed scheduled run: {entered, left} (empty for a first run, a run not
    completed, or a run whose previous run has expired)."""
    if gist.status != Status.COMPLETED or not gist.schedule_prev:
        return {"entered": [], "left": []}
    chain = chain_of_runs(store, gist, lookback_runs(cooldown))
    return announcements([universe_ranks(run) for run in chain], gist.config.top_k, band, cooldown)
