"""Where the time of a cold `/rank markets=100` goes before the card appears.

The config factory (what the bot runs in a thread before it starts the analysis) picks the 100
most-traded pairs and checks that each has enough candles for the indicators: with an empty
candle cache that is one klines request per market. This runs the real factory and the real
ccxt client against the Binance emulator (the 40 real markets and 60 rescaled copies, as in
`bench.live_data_bench`) with both rate limits on, and splits the wall time into:

- market list (`load_markets`, one exchangeInfo request) and 24 h tickers;
- per market: waiting for the rate limiters (ccxt's own and the Redis token bucket), the HTTP
  request (emulator answering, JSON decoding), ccxt turning the answer into rows, our checks and
  frame, storing the candle blocks in Redis, and the window check.

Then the same call once more within the same candle (warm: no request). Medians of ROUNDS rounds,
each with its own key prefix (its own cold cache). `python -m bench.market_choice_bench`.
"""

import os
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

MARKETS = 100
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 3))
RESULTS = Path(__file__).parent / "results" / "market_choice.md"
PER_USER, BENCH_ENV = None, dict[str, str]()  # starts no analysis: no per-user limit (bench/limits.py)


class Timers:
    """Summed wall time per name; inside a `first` call (market list, tickers) the inner
    timers count under "first:<name>", so per-market figures leave those requests out."""

    def __init__(self) -> None:
        self.total: dict[str, float] = defaultdict(float)
        self.in_first = False

    def wrap(self, name: str, call, *, first: bool = False):
        def timed(*args, **kwargs):
            key = f"first:{name}" if self.in_first and not first else name
            self.in_first = self.in_first or first
            start = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                self.total[key] += time.perf_counter() - start
                if first:
                    self.in_first = False

        return timed


def one_round(server, redis_url: str) -> dict[str, float]:
    import analysis.config_factory as config_factory
    from analysis.config_factory import RankingConfigFactory
    from analysis.markets import ccxt_source
    from analysis.markets.ccxt_source import CcxtProvider
    from analysis.settings import Settings

    settings = Settings(
        redis_url=redis_url,
        market_data="ccxt:binance",
        ccxt_api_url=server.url,
        key_prefix=f"bench{uuid.uuid4().hex[:6]}:",
    )
    provider = CcxtProvider("binance", settings)
    factory = RankingConfigFactory(settings, provider, llm_configured=False)
    t = Timers()
    exchange = provider.exchange()
    exchange.throttle = t.wrap("rate limiters", exchange.throttle)
    exchange.fetch = t.wrap("HTTP (emulator + JSON)", exchange.fetch)
    exchange.fetch_ohlcv = t.wrap("fetch_ohlcv", exchange.fetch_ohlcv)
    provider._markets = t.wrap("market list", provider._markets, first=True)
    provider._volumes = t.wrap("24 h tickers", provider._volumes, first=True)
    provider._fetch_range = t.wrap("fetch range", provider._fetch_range)
    provider.cache.candles = t.wrap("cache", provider.cache.candles)
    originals = (ccxt_source.check_rows, ccxt_source.frame_from_rows, config_factory.window_problem)
    ccxt_source.check_rows = t.wrap("rows", ccxt_source.check_rows)
    ccxt_source.frame_from_rows = t.wrap("rows", ccxt_source.frame_from_rows)
    config_factory.window_problem = t.wrap("window check", config_factory.window_problem)
    try:
        server.reset_counts()
        start = time.perf_counter()
        config = factory.create_ranking_config(markets=MARKETS, top_k=10)
        cold_s = time.perf_counter() - start
        cold_requests = server.count()
        assert len(config.markets) == MARKETS
        s = dict(t.total)
        server.reset_counts()
        start = time.perf_counter()
        factory.create_ranking_config(markets=MARKETS, top_k=10)
        warm_s = time.perf_counter() - start
        warm_requests = server.count()
    finally:
        ccxt_source.check_rows, ccxt_source.frame_from_rows, config_factory.window_problem = originals
    # Nested timers: fetch_ohlcv holds throttle and HTTP; the fetch range holds fetch_ohlcv and
    # our rows; the cache holds the fetch range.
    s = defaultdict(float, s)
    phases = {
        "market list (1 request)": s["market list"],
        "24 h tickers of all pairs (1 request, ccxt cost 16 = weight 80)": s["24 h tickers"],
        "24 h tickers: of which waiting for the rate limiters": s["first:rate limiters"],
        "klines (1 request a market): waiting for the rate limiters": s["rate limiters"],
        "klines: HTTP (emulator answering, JSON decode)": s["HTTP (emulator + JSON)"],
        "klines: ccxt parsing the answer": s["fetch_ohlcv"]
        - s["rate limiters"]
        - s["HTTP (emulator + JSON)"],
        "klines: our row checks and frame": s["rows"],
        "candle blocks into Redis (the cache INIT reads)": s["cache"] - s["fetch range"],
        "window check (enough candles, thin share)": s["window check"],
    }
    phases["other (factory, config)"] = cold_s - sum(v for k, v in phases.items() if "of which" not in k)
    return {
        "cold_s": cold_s,
        "cold_requests": cold_requests,
        "warm_s": warm_s,
        "warm_requests": warm_requests,
        **phases,
    }


def main() -> int:
    from bench.live_data_bench import median_rounds, report

    m = median_rounds(one_round, MARKETS, ROUNDS)
    head = ["cold_s", "cold_requests", "warm_s", "warm_requests"]
    rows = [
        ("cold: markets=100 config, wall s", f"{m['cold_s']:.2f}"),
        ("cold: exchange requests", f"{m['cold_requests']:.0f}"),
        ("warm (same candle): wall s", f"{m['warm_s']:.2f}"),
        ("warm: exchange requests", f"{m['warm_requests']:.0f}"),
    ]
    rows += [(f"cold, {name}, s", f"{value:.2f}") for name, value in m.items() if name not in head]
    note = (
        f"`/rank markets=100` config (RankingConfigFactory, what the bot runs before the card), "
        f"real ccxt client against the Binance emulator, rate limits on; medians of {ROUNDS} "
        f"rounds, each with a cold cache."
    )
    report(note, rows, RESULTS)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.exit(main())
