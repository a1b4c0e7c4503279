"""What the chaos run (bench/chaos.py) checks and reports from: the same analyses run without
faults (ReferenceRuns), the event stream by analysis, the steps each kill interrupted and how long
they took to commit again, the broker's redeliveries, and the driver's own log.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

from analysis.models import Gist, RankingConfig
from tests.worker_logs import LogStats


@dataclass
class Kill:
    at: float
    kind: str
    slot: int
    leases: dict[str, str]


def kill_recoveries(
    kills: list[Kill], histories, events, committed_attempts: set[str], kicks_at: dict[str, list[float]]
) -> tuple[list, list[float]]:
    """For each step a kill or freeze interrupted (it held a lease and never committed):
    (kind, seconds to its analysis's next commit), unless a pause, cancel or force-resume
    came first; and the seconds to the watchdog's re-enqueue, where the watchdog did it (a
    killed pool process's task may also be requeued by the broker first)."""
    to_commit, to_kick = [], []
    for kill in kills:
        if kill.kind == "worker_sigterm":
            continue
        for analysis_id, attempt in kill.leases.items():
            if attempt in committed_attempts or analysis_id not in histories:
                continue
            later = [e.finished_at for e in histories[analysis_id] if e.finished_at > kill.at]
            if not later:
                continue
            until = min(later)
            interfered = any(
                kill.at <= e["at"] <= until and e["kind"] in ("paused", "cancelled", "stuck", "force_resumed")
                for e in events.get(analysis_id, [])
            )
            if interfered:
                continue
            to_commit.append((until - kill.at, kill.kind))
            kicks = [t for t in kicks_at.get(analysis_id, []) if kill.at <= t <= until]
            if kicks:
                to_kick.append(min(kicks) - kill.at)
    return to_commit, to_kick


def redeliveries(stats: LogStats, visibility_timeout_s: float) -> tuple[Counter, int]:
    """Broker redeliveries, 'soon' (requeued at once) or 'late' (after the visibility timeout),
    and how many late ones did work instead of being a no-op."""
    late_after = 0.9 * visibility_timeout_s
    kinds: Counter[str] = Counter()
    late_not_noop = 0
    for task_id, times in stats.received.items():
        if len(times) < 2:
            continue
        times = sorted(times)
        for before, again in zip(times, times[1:]):
            late = again - before >= late_after
            kinds["late" if late else "soon"] += 1
            if late:
                outcome = [d for t, d in stats.decisions.get(task_id, []) if t >= again - 1]
                if outcome and not outcome[0].startswith("skip:"):
                    late_not_noop += 1
    return kinds, late_not_noop


# --- references: the same analyses without faults ----------------------------------------------
class ReferenceRuns:
    """Runs the score strategy step by step in this process, on the candles INIT would snapshot
    (through the same encoding), with no Redis, broker or faults: the run without faults."""

    def __init__(self, data_dir: Path):
        from analysis.markets.csv_dir import CsvDirProvider

        self.provider = CsvDirProvider(data_dir)
        self._frames: dict[tuple[str, str, int], object] = {}
        self._outcomes: dict[tuple, tuple[list, float]] = {}

    def _candles(self, config: RankingConfig, symbols: list[str]) -> dict:
        from analysis.markets.candle_blocks import decode_candles, encode_candles

        frames = {}
        for symbol in symbols:
            key = (symbol, config.timeframe, config.window)
            if key not in self._frames:
                raw = self.provider.candles(symbol, config.timeframe, config.window)
                self._frames[key] = decode_candles(encode_candles(raw))
            frames[symbol] = self._frames[key]
        return frames

    def outcome(self, config: RankingConfig, views: int, steadiest: bool = False) -> tuple[list, float]:
        from analysis.ranking.strategies import get_strategy
        from analysis.ranking.strategies.base import StepInput

        config = config.model_copy(update={"views": views})
        key = (tuple(config.markets), config.top_k, config.kind, config.batch_size, views, steadiest)
        if key not in self._outcomes:
            strategy = get_strategy(config.strategy)
            state = strategy.initial_state(config, list(config.markets))
            for seq in range(1, 10_000):
                outcome = strategy.step(
                    StepInput(
                        analysis_id="reference",
                        seq=seq,
                        config=config,
                        state=state,
                        target=config.target_confidence,
                        model="",
                        load_candles=lambda symbols: self._candles(config, symbols),
                    )
                )
                state = outcome.state
                if outcome.done and not (steadiest and state.get("ranking") != "steadiest"):
                    break
            self._outcomes[key] = (outcome.result, round(outcome.confidence, 6))
        return self._outcomes[key]


def ranking_violations(gist: Gist, config: RankingConfig, references: ReferenceRuns) -> list[str]:
    """A completed analysis against the same config run without faults: same ranking, same
    confidence (at the views it ended with; a refined one reports the steadiest top K)."""
    views = gist.state.get("views", config.views)
    steadiest = gist.state.get("ranking") == "steadiest"
    expected_result, expected_confidence = references.outcome(config, views, steadiest)
    found = []
    got = json.dumps([asdict(item) for item in gist.result], sort_keys=True)
    if got != json.dumps(expected_result, sort_keys=True):
        found.append(
            f"{gist.id}: final ranking differs from the run without faults "
            f"({[i.symbol for i in gist.result]} vs "
            f"{[i['symbol'] for i in expected_result]})"
        )
    if gist.confidence != expected_confidence or gist.progress != 1.0:
        found.append(
            f"{gist.id}: confidence {gist.confidence} (progress {gist.progress}) "
            f"vs {expected_confidence} without faults at {views} views"
        )
    return found


def events_by_analysis(client, stream: str) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = defaultdict(list)
    last = "-"
    while True:
        batch = client.xrange(stream, min=last, count=10_000)
        if last != "-":
            batch = batch[1:]
        if not batch:
            return found
        for _entry_id, fields in batch:
            item = {k.decode(): v.decode() for k, v in fields.items()}
            item["at"] = float(item.get("at") or 0)
            found[item.get("id", "")].append(item)
        last = batch[-1][0].decode()


def reason_kind(reason: str) -> str:
    if reason.startswith("stuck"):
        return "watchdog gave up"
    if "injected fault" in reason or "market-data" in reason:
        return "data source"
    if reason.startswith("internal error"):
        return "internal error"
    return reason or "no reason"


def log_driver_to(path: Path) -> logging.Handler:
    """The driver's own log (service warnings, e.g. an enqueue that failed while Redis was down)."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    return handler
