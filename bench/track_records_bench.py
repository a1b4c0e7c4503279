"""`make bench-track-records`: what pick records cost in Redis, and one evaluation pass.

1,000 live pick records of the score strategy over a csv folder of 40 markets (the shared
Binance data when present, else the demo series written as csv), one decision an hour, each
written as a completing step writes it (WRITE_RECORD) and then scored at 1/4/24 bars by the real
evaluation pass. Measured: MEMORY USAGE of one record and of its results, Redis `used_memory`
per 1,000 records with every index, and the wall time of the pass (candles read once per market).
A record's size grows with its universe by about 40 bytes a market (symbol, score, rank).
"""

import sys
import tempfile
import time
import uuid
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "track_records.md"
RECORDS = 1000
HORIZONS = [1, 4, 24]
PER_USER = None  # bench/limits.py: it writes records straight to the store, no analysis started
BENCH_ENV: dict[str, str] = {}


def csv_folder(markets: int) -> str:
    """A csv folder of `markets` hourly series: real ones from the shared data when there are
    enough, else the demo markets written as csv."""
    from analysis.markets.demo import DEMO_MARKETS, DemoProvider
    from analysis.settings import Settings

    shared = Settings().shared_data_dir
    files = sorted(shared.glob("*_USDT-1h.csv")) if shared.is_dir() else []
    if len(files) >= markets:
        return f"csv:{shared}"
    folder = Path(tempfile.mkdtemp(prefix="track-bench-"))
    demo = DemoProvider()
    for symbol in DEMO_MARKETS[:markets]:
        demo.candles(symbol, "1h", 3000).to_csv(
            folder / f"{symbol.replace('/', '_')}-1h.csv",
            index_label="timestamp",
            date_format="%Y-%m-%dT%H:%M:%SZ",
        )
    return f"csv:{folder}"


def write_records(records, source: str, markets: int) -> list:
    """RECORDS records, one an hour, each ranking the first `markets` markets (scores made up:
    the size does not depend on them)."""
    from analysis.markets.registry import provider_from_spec
    from analysis.models import source_name
    from analysis.track.model import PickRecord, Ranked
    from analysis.track.record_store import StoredRecord, group_name

    provider = provider_from_spec(source)
    symbols = provider.list_markets("1h")[:markets]
    frame = provider.candles(symbols[0], "1h", 100_000)
    start = int(frame.index[100].value // 10**6)
    tag, written = uuid.uuid4().hex[:6], []
    for i in range(RECORDS):
        order = symbols[i % markets :] + symbols[: i % markets]
        record = PickRecord(
            t=start + i * 3600_000,
            timeframe="1h",
            source=source_name(source),
            strategy="score",
            model=None,
            k=10,
            analysis_id=f"bench{tag}{i:04d}"[:10],
            schedule_id=None,
            universe=tuple(Ranked(s, round(0.5 - j / markets, 6), j + 1) for j, s in enumerate(order)),
        )
        stored = StoredRecord(
            id=f"b{tag}{i:05d}:7",
            record=record,
            data_source=source,
            kind="rank",
            group=group_name("score", "1h", source_name(source)),
        )
        records.write(stored, due_s=0, now_s=time.time())
        written.append(stored)
    return written


def measure(client, keys, markets: int) -> dict[str, float]:
    from analysis.track.live_evaluate import evaluate_due
    from analysis.track.record_store import RecordStore

    client.flushall()
    records = RecordStore(client, keys, retention_days=180)
    source = csv_folder(markets)
    before = client.info("memory")["used_memory"]
    written = write_records(records, source, markets)
    after_write = client.info("memory")["used_memory"]
    started = time.perf_counter()
    counts = evaluate_due(records, HORIZONS, time.time(), retry_s=300, limit=RECORDS)
    pass_s = time.perf_counter() - started
    after_eval = client.info("memory")["used_memory"]
    sample = written[len(written) // 2]
    return {
        "markets": markets,
        "record_bytes": client.memory_usage(keys.track_record(sample.id)),
        "json_bytes": len(sample.to_json()),
        "results_bytes": client.memory_usage(keys.track_result(sample.id)) or 0,
        "per_1000_records_kb": (after_write - before) / 1024 * 1000 / RECORDS,
        "per_1000_scored_kb": (after_eval - before) / 1024 * 1000 / RECORDS,
        "pass_s": pass_s,
        "scored": counts.scored,
    }


def main() -> int:
    import redis

    from analysis.db.keys import Keys
    from tests.servers import RedisServer

    server = RedisServer().start()
    try:
        client = redis.Redis.from_url(server.url)
        keys = Keys("bench:")
        rows = [measure(client, keys, 40)]  # the shared data's 40 markets
    finally:
        server.cleanup()
    lines = [
        "# Pick records in Redis (`make bench-track-records`)",
        "",
        f"{RECORDS} records of the score strategy, one an hour, scored at "
        f"{'/'.join(map(str, HORIZONS))} bars by one evaluation pass (csv candles, read once "
        "per market). `MEMORY USAGE` of one record and its results; `used_memory` growth per "
        "1,000 records with every index (all, group, due); this machine, "
        f"{time.strftime('%Y-%m-%d')}.",
        "",
        "| markets | record (JSON) | record in Redis | its results (3 horizons) | Redis per 1,000 "
        "records | ... once scored | pass over 1,000 records |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['markets']} | {r['json_bytes']:,} B | {r['record_bytes']:,} B | "
            f"{r['results_bytes']:,} B | {r['per_1000_records_kb']:,.0f} KB | "
            f"{r['per_1000_scored_kb']:,.0f} KB | {r['pass_s']:.1f} s ({r['scored']} horizons) |"
        )
    text = "\n".join(lines) + "\n"
    RESULTS.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
