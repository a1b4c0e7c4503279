"""What changed between two runs of one schedule: markets that entered or left the top K, and
the moves in rank of those in both.

Computed when read (card, CLI, `status --json`) from the two runs' results, so it needs no write
and is the same whoever asks. A run's previous run is the schedule's last completed run when this
one started (`Gist.schedule_prev`); the first run has none, and its changes are empty.
"""

from __future__ import annotations

from typing import Any

from analysis.models import Gist, RankedMarket, Status
from analysis.schedules.alerts import run_alerts


def diff_top_k(old: list[RankedMarket], new: list[RankedMarket], k: int) -> dict[str, Any]:
    """`entered`: symbols in the new top K and not the old (new order); `left`: in the old top K
    and not the new (old order); `moved`: symbol -> {old, new} rank for those in both whose rank
    changed, the biggest moves first."""
    old_ranks = {item.symbol: item.rank for item in sorted(old, key=lambda i: i.rank)[:k]}
    new_ranks = {item.symbol: item.rank for item in sorted(new, key=lambda i: i.rank)[:k]}
    moved = {
        symbol: {"old": old_ranks[symbol], "new": rank}
        for symbol, rank in new_ranks.items()
        if symbol in old_ranks and old_ranks[symbol] != rank
    }
    biggest_first = sorted(moved.items(), key=lambda kv: (-abs(kv[1]["old"] - kv[1]["new"]), kv[1]["new"]))
    return {
        "entered": [s for s in new_ranks if s not in old_ranks],
        "left": [s for s in old_ranks if s not in new_ranks],
        "moved": dict(biggest_first),
    }


def no_changes() -> dict[str, Any]:
    return {"entered": [], "left": [], "moved": {}}


def has_alerts(changes: dict[str, Any]) -> bool:
    """A notify=changes schedule posts this run: a market entered or left (with hysteresis)."""
    alerts = changes.get("alerts") or {}
    return bool(alerts.get("entered") or alerts.get("left"))


def run_changes(store, gist: Gist) -> dict[str, Any]:
    """The changes of a scheduled run against its previous run, with `against` (that run's id, or
    None for a first run). Empty until this run completes, and when the previous run has expired.
    `alerts` is what a notify=changes schedule announces (analysis/schedules/alerts.py)."""
    settings = store.settings
    alerts = run_alerts(store, gist, settings.schedule_hysteresis, settings.schedule_alert_cooldown_runs)
    changes = {"against": gist.schedule_prev or None, **no_changes(), "alerts": alerts}
    if not gist.schedule_prev or gist.status != Status.COMPLETED:
        return changes
    previous = store.load(gist.schedule_prev)
    if previous is None or not previous.result:
        return changes
    return {**changes, **diff_top_k(previous.result, gist.result, gist.config.top_k)}
