"""Shared set-up of the track-record tests: csv folders of candles cut at a decision time, a
config over them, and running an analysis to completion in this process."""

from pathlib import Path

import pandas as pd

from analysis.config_factory import RankingConfigFactory
from analysis.markets.csv_dir import read_candles_csv
from analysis.markets.demo import DemoProvider
from analysis.markets.registry import provider_from_spec
from analysis.models import RankingConfig
from tests.helpers import wait_for_status

MARKETS = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "DOGE/USDT", "ADA/USDT", "LINK/USDT", "DOT/USDT")
DECISION_ROW = 700  # the last candle the analysis ranks is row DECISION_ROW - 1
STEP_MS = 3600_000


def series(symbol: str) -> pd.DataFrame:
    """Candles to write to csv: the demo market's hourly series (3000 candles to 2026-01-01)."""
    return DemoProvider().candles(symbol, "1h", 3000)


def write_folder(folder: Path, frames: dict[str, pd.DataFrame]) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for symbol, frame in frames.items():
        frame.to_csv(
            folder / f"{symbol.replace('/', '_')}-1h.csv",
            index_label="timestamp",
            date_format="%Y-%m-%dT%H:%M:%SZ",
        )
    read_candles_csv.cache_clear()  # a folder rewritten in place is read again
    return f"csv:{folder}"


def decision_t_ms(rows: int = DECISION_ROW) -> int:
    """The close of candle `rows - 1` of every series: the decision time of a ranking of it."""
    return int(series(MARKETS[0]).index[rows - 1].value // 10**6) + STEP_MS


def csv_config(settings, source: str, *, top_k: int = 3, t_ms: int | None = None) -> RankingConfig:
    factory = RankingConfigFactory(settings, provider_from_spec(source))
    config = factory.create_ranking_config(symbols=list(MARKETS), timeframe="1h", top_k=top_k)
    if t_ms is not None:  # rank the candles closed by t only, whatever the folder holds after
        config = config.model_copy(update={"candles_to": t_ms // 1000})
    return config


def run_to_completion(service, queue, runtime, config, actor):
    gist = service.start(config, actor)
    queue.drain(runtime)
    return wait_for_status(service, gist.id, actor, ["COMPLETED"], timeout=5)


def forward_return(frame: pd.DataFrame, row: int, bars: int) -> float:
    """The return a record decided after candle `row - 1` earns `bars` ahead (entry at row)."""
    return float(frame["close"].iloc[row + bars] / frame["close"].iloc[row] - 1)


def seed_scored_records(
    records,
    source: str,
    *,
    n: int,
    every_bars: int,
    rank_by,
    start_row: int = 100,
    k: int = 3,
    horizons=(1, 4, 24),
) -> list:
    """`n` pick records of the `score` group of `source` (a csv folder holding every candle),
    decided every `every_bars` bars and ranked by `rank_by(frame, row) -> score`, then scored by
    the real evaluation pass."""
    import time
    import uuid

    from analysis.models import source_name
    from analysis.track.live_evaluate import evaluate_due
    from analysis.track.model import PickRecord, Ranked
    from analysis.track.record_store import StoredRecord, group_name

    full = {s: series(s) for s in MARKETS}
    seeded, tag = [], uuid.uuid4().hex[:8]
    for i in range(n):
        row = start_row + i * every_bars
        values = {s: rank_by(full[s], row) for s in MARKETS}
        order = sorted(MARKETS, key=lambda s: (-values[s], s))
        record = PickRecord(
            t=decision_t_ms(row),
            timeframe="1h",
            source=source_name(source),
            strategy="score",
            model=None,
            k=k,
            analysis_id=f"seed{tag}",
            schedule_id=None,
            universe=tuple(Ranked(s, round(values[s], 6), j + 1) for j, s in enumerate(order)),
        )
        stored = StoredRecord(
            id=f"seed{tag}:{i}",
            record=record,
            data_source=source,
            kind="rank",
            group=group_name("score", "1h", source_name(source)),
        )
        assert records.write(stored, due_s=0, now_s=time.time())
        seeded.append(stored)
    evaluate_due(records, list(horizons), time.time(), retry_s=60, limit=n + 100)
    assert all(len(records.results(s.id)) == len(horizons) for s in seeded)
    return seeded
