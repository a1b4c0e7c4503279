"""`make bench` (part 3): live candles through ccxt and the shared Redis cache.

The real ccxt client fetches 1h candles of 100 markets x 1000 candles over HTTP from the Binance
emulator (tests/binance_server.py; the 40 real markets of the shared data and 60 copies of them at
other price scales), through `CcxtProvider` with its rate limits on (ccxt's own and the Redis
token bucket), as a worker's INIT does:

1. cold: empty cache: one klines request per market (plus the market list once);
2. warm: the same again in the same candle: served from Redis, no request;
3. next candle: one hour later, only the new candle of each market is asked for;
4. snapshot: what an analysis's INIT snapshot of the 100 markets (window 500) writes: block
   refs, and candle blocks that were not in the cache already.
Each figure is the median of ROUNDS rounds (each with its own key prefix, so its own cold cache).
"""

import os
import statistics
import sys
import time
import uuid
from pathlib import Path

MARKETS = 100
CANDLES = 1000
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 3))
RESULTS = Path(__file__).parent / "results" / "live_data.md"
PER_USER, BENCH_ENV = None, dict[str, str]()  # starts no analysis: no per-user limit (bench/limits.py)


def synthetic_markets(data_dir: Path, now_ms: int, count: int):
    """`count` markets beyond the real ones: real series at another price scale."""
    from tests.binance_server import Market, load_markets

    real = list(load_markets(data_dir, now_ms).values())
    extra = []
    for i in range(count):
        source = real[i % len(real)]
        rows = source.candles.copy()
        rows[:, 1:5] *= 1.0 + 0.37 * (i + 1)
        extra.append(Market(f"SYN{i:02d}/USDT", rows))
    return extra


def timed(call) -> tuple[float, object]:
    start = time.perf_counter()
    value = call()
    return time.perf_counter() - start, value


def one_round(server, redis_url: str) -> dict[str, float]:
    from analysis.engine.snapshot import snapshot_refs
    from analysis.markets.candle_blocks import BLOCK_CANDLES
    from analysis.markets.ccxt_source import CcxtProvider
    from analysis.settings import Settings

    settings = Settings(
        redis_url=redis_url,
        market_data="ccxt:binance",
        ccxt_api_url=server.url,
        key_prefix=f"bench{uuid.uuid4().hex[:6]}:",
    )
    provider = CcxtProvider("binance", settings)
    symbols = [s for s, _ in provider.market_volumes("1h")][:MARKETS]
    assert len(symbols) == MARKETS, f"the emulator lists {len(symbols)} markets"
    fetch_all = lambda: [provider.candles(s, "1h", CANDLES) for s in symbols]  # noqa: E731

    server.reset_counts()
    cold_s, frames = timed(fetch_all)
    cold_requests = server.count()
    assert all(len(f) == CANDLES for f in frames)
    server.reset_counts()
    warm_s, _ = timed(fetch_all)
    warm_requests = server.count()
    real_clock = provider.cache.clock
    provider.cache.clock = lambda: real_clock() + 3600
    server.reset_counts()
    next_s, _ = timed(fetch_all)
    next_requests = server.count()
    provider.cache.clock = real_clock

    prefix = settings.key_prefix
    blocks_before = set(provider.redis.scan_iter(f"{prefix}block:*", count=1000))
    refs = {
        s: snapshot_refs(
            provider.cache.blocks,
            provider.candles(s, "1h", 500 + BLOCK_CANDLES),
            500,
            3600,
            settings.gist_ttl_s,
        )
        for s in symbols
    }
    new_blocks = set(provider.redis.scan_iter(f"{prefix}block:*", count=1000)) - blocks_before
    block_bytes = sum(provider.redis.memory_usage(k) or 0 for k in blocks_before) / MARKETS
    return {
        "cold_s": cold_s,
        "cold_requests": cold_requests,
        "warm_s": warm_s,
        "warm_requests": warm_requests,
        "next_s": next_s,
        "next_requests": next_requests,
        "snapshot_new_blocks": len(new_blocks),
        "snapshot_ref_bytes": sum(len(r) for r in refs.values()) / MARKETS,
        "cached_block_bytes_per_market": block_bytes,
    }


def median_rounds(one_round, markets: int = MARKETS, rounds: int = ROUNDS) -> dict[str, float]:
    """`one_round(server, redis_url)` `rounds` times against the Binance emulator (the 40 real
    markets and rescaled copies up to `markets`) and a private redis-server; each figure's median."""
    from analysis.settings import Settings
    from tests.binance_server import BinanceServer
    from tests.servers import RedisServer

    data_dir = Settings().shared_data_dir
    now_ms = int(time.time() * 1000)
    redis_server = RedisServer().start()
    try:
        with BinanceServer(
            data_dir, now=now_ms / 1000, extra_markets=synthetic_markets(data_dir, now_ms, markets - 40)
        ) as server:
            results = [one_round(server, redis_server.url) for _ in range(rounds)]
    finally:
        redis_server.cleanup()
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def report(note: str, rows: list[tuple[str, str]], results: Path) -> None:
    """Print the note and a two-column table, and keep them in `results`."""
    table = "| measure | value |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows)
    print(f"{note}\n\n{table}")
    results.parent.mkdir(exist_ok=True)
    results.write_text(note + "\n\n" + table + "\n")


def main() -> int:
    m = median_rounds(one_round)
    rows = [
        ("cold: 100 markets x 1000 candles, wall s", f"{m['cold_s']:.2f}"),
        ("cold: exchange requests", f"{m['cold_requests']:.0f}"),
        ("warm (same candle): wall s", f"{m['warm_s']:.3f}"),
        ("warm: exchange requests", f"{m['warm_requests']:.0f}"),
        ("cache hit per market (1000 candles), ms", f"{1000 * m['warm_s'] / MARKETS:.2f}"),
        ("next candle closed: wall s", f"{m['next_s']:.2f}"),
        ("next candle closed: exchange requests", f"{m['next_requests']:.0f}"),
        (
            "INIT snapshot of the 100 markets (window 500): candle blocks not already cached",
            f"{m['snapshot_new_blocks']:.0f}",
        ),
        ("INIT snapshot: refs per market, bytes", f"{m['snapshot_ref_bytes']:.0f}"),
        (
            "cached candle blocks per market (1000+ candles), bytes in Redis",
            f"{m['cached_block_bytes_per_market']:.0f}",
        ),
    ]
    note = (
        f"Live data through ccxt against the Binance emulator, medians of {ROUNDS} rounds; "
        f"rate limits on (ccxt's binance: 20 cost units a second = Binance's 6,000 request "
        f"weight a minute; a spot klines request costs 0.4, so at most 50 a second, shared "
        f"by every process through the Redis token bucket)."
    )
    report(note, rows, RESULTS)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.exit(main())
