"""Live market data through the real ccxt client over HTTP, against the Binance emulator
(tests/binance_server.py) serving the shared real candles moved to end at the present hour."""

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import redis

from analysis.errors import AnalysisError, DataUnavailable, InvalidConfig
from analysis.models import Status
from tests.binance_server import HOUR_MS, BinanceServer, Market, load_markets
from tests.helpers import QueueDispatcher, ranking, redis_snapshot, wait_for_status
from tests.servers import ROOT, free_port

pytestmark = pytest.mark.usefixtures("shared_data_dir")
HOUR = 3600


def extra_markets(data_dir, now_ms):
    """A halted pair with a huge volume, a pair in another quote currency with a huge volume,
    a new listing with too few candles, a quiet pair with many zero-volume candles, and a
    stablecoin pair (USDC/USDT: price within 0.02% of 1, every candle traded, huge volume)."""
    base = load_markets(data_dir, now_ms, ["BTC/USDT", "LINK/USDT"])
    btc, link = base["BTC/USDT"].candles, base["LINK/USDT"].candles
    quiet = link.copy()
    quiet[-500::3, 5] = 0.0  # a third of the last 500 candles without trades
    return [
        Market("LUNA/USDT", btc.copy(), status="BREAK", volume_boost=1000.0),
        Market("ETH/BTC", btc.copy(), volume_boost=1000.0),
        Market("NEW/USDT", btc[-100:].copy(), volume_boost=1000.0),
        Market("QUIET/USDT", quiet, volume_boost=1000.0),
        Market("USDC/USDT", stablecoin(btc)),
    ]


def stablecoin(like: np.ndarray) -> np.ndarray:
    """Candles at the times of `like` whose price wanders within 0.02% of 1, with a quote
    volume far above any real market's."""
    rng = np.random.default_rng(7)
    close = 1 + 0.0002 * np.sin(np.arange(len(like)) / 5) + rng.uniform(-5e-5, 5e-5, len(like))
    open_ = np.concatenate([[close[0]], close[:-1]])
    rows = like.copy()
    rows[:, 1], rows[:, 4] = open_, close
    rows[:, 2] = np.maximum(open_, close) + 5e-5
    rows[:, 3] = np.minimum(open_, close) - 5e-5
    rows[:, 5] = 5e11  # a quote volume of 5e11 an hour: far above BTC/USDT
    return rows


@pytest.fixture(scope="module")
def binance(shared_data_dir):
    now_ms = int(time.time() * 1000)
    with BinanceServer(
        shared_data_dir, now=now_ms / 1000, extra_markets=extra_markets(shared_data_dir, now_ms)
    ) as server:
        yield server


@dataclass
class Live:
    server: BinanceServer
    settings: object
    runtime: object
    queue: QueueDispatcher
    service: object
    factory: object
    provider: object


def live_env(monkeypatch, url: str, **extra: str) -> None:
    env = {
        "MARKET_DATA": "ccxt:binance",
        "CCXT_API_URL": url,
        "KEY_PREFIX": f"t{uuid.uuid4().hex[:8]}:",
        "CCXT_BACKOFF_S": "0.01",
        "CCXT_BACKOFF_MAX_S": "0.5",
        "CCXT_TIMEOUT_S": "3",
        "CCXT_RETRIES": "3",
        **extra,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def build_live(server) -> Live:
    from analysis.config_factory import RankingConfigFactory
    from analysis.engine.runtime import Runtime
    from analysis.markets.registry import provider_from_spec
    from analysis.service import AnalysisService
    from analysis.settings import get_settings

    get_settings.cache_clear()
    provider_from_spec.cache_clear()
    settings = get_settings()
    runtime = Runtime(settings)
    queue = QueueDispatcher()
    return Live(
        server,
        settings,
        runtime,
        queue,
        AnalysisService(runtime.store, queue),
        RankingConfigFactory(settings, runtime.provider),
        runtime.provider,
    )


@pytest.fixture(autouse=True)
def fresh_settings(monkeypatch):
    """Each test's environment, and settings and providers built from it alone; its keys (its own
    KEY_PREFIX) are removed after it, so no later test of the session's Redis sees one expire."""
    yield
    prefix = os.environ.get("KEY_PREFIX", "")
    if prefix.startswith("t") and os.environ.get("REDIS_URL"):
        client = redis.Redis.from_url(os.environ["REDIS_URL"])
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)
    monkeypatch.undo()
    from analysis.markets.registry import provider_from_spec
    from analysis.settings import get_settings

    get_settings.cache_clear()
    provider_from_spec.cache_clear()


@pytest.fixture
def live(binance, monkeypatch):
    live_env(monkeypatch, binance.url)
    binance.down = False
    binance.clear_faults()
    binance.reset_counts()
    return build_live(binance)


def closed_frame(server, symbol: str) -> pd.DataFrame:
    rows = server.closed_candles(symbol)
    index = pd.DatetimeIndex(
        pd.to_datetime(rows[:, 0].astype("int64"), unit="ms", utc=True), name="timestamp"
    )
    return pd.DataFrame(rows[:, 1:6], columns=["open", "high", "low", "close", "volume"], index=index)


def emulator_top(server, n: int, *, skip: tuple[str, ...] = ("QUIET/USDT", "USDC/USDT")) -> list[str]:
    """The n most traded trading USDT pairs by the emulator's own 24 h quote volume, but for
    `skip` (the quiet pair, and the stablecoin pair EXCLUDED_BASES leaves out by default)."""
    volume = {
        m.symbol: float(
            (server.closed_candles(m.symbol)[-24:, 4] * server.closed_candles(m.symbol)[-24:, 5]).sum()
        )
        * m.volume_boost
        for m in server.markets.values()
        if m.status == "TRADING"
        and m.symbol.endswith("/USDT")
        and len(m.candles) > 600
        and m.symbol not in skip
    }
    return sorted(volume, key=lambda s: -volume[s])[:n]


# --- the source ----------------------------------------------------------------------------------
def test_ccxt_api_url_replaces_scheme_and_host_of_every_rest_url_and_keeps_paths():
    import ccxt

    from analysis.markets.ccxt_source import rewrite_api_urls

    original = ccxt.binance().urls["api"]
    rewritten = rewrite_api_urls(original, "http://127.0.0.1:8123")
    assert rewritten["public"] == "http://127.0.0.1:8123/api/v3"
    assert rewritten["fapiPublic"] == "http://127.0.0.1:8123/fapi/v1"
    https = [k for k, v in original.items() if isinstance(v, str) and v.startswith("https://")]
    assert len(https) > 10
    assert all(rewritten[k].startswith("http://127.0.0.1:8123/") for k in https)
    nested = rewrite_api_urls({"rest": {"public": "https://x.example/v5/p?q=1"}}, "http://h:1")
    assert nested == {"rest": {"public": "http://h:1/v5/p?q=1"}}


def test_a_bad_ccxt_api_url_or_exchange_is_refused_with_what_is_accepted():
    from analysis.markets.registry import provider_from_spec
    from analysis.settings import Settings

    with pytest.raises(ValueError, match="scheme://host"):
        Settings(ccxt_api_url="127.0.0.1:8123/api")
    with pytest.raises(InvalidConfig, match="ccxt has no exchange 'nosuchex'"):
        provider_from_spec("ccxt:nosuchex")


def test_loading_markets_asks_only_the_spot_endpoints(live):
    live.provider.market_volumes("1h")
    assert set(live.server.paths()) == {"/api/v3/exchangeInfo", "/api/v3/ticker/24hr"}


# --- which markets -------------------------------------------------------------------------------
def test_markets_n_picks_the_most_traded_active_pairs_and_never_a_halted_one(live):
    config = live.factory.create_ranking_config(markets=10, top_k=3)
    assert config.markets == emulator_top(live.server, 10)
    volumes = dict(live.factory.market_volumes("1h"))
    # LUNA (halted) and ETH/BTC (another quote) have the largest volumes and are not candidates;
    # NEW (100 candles) and QUIET (a third of its candles without trades) are candidates by
    # volume but cannot be ranked, so they are passed over.
    assert "LUNA/USDT" not in volumes and "ETH/BTC" not in volumes
    assert {"NEW/USDT", "QUIET/USDT"} <= set(list(volumes)[:3])
    assert not {"LUNA/USDT", "ETH/BTC", "NEW/USDT", "QUIET/USDT"} & set(config.markets)
    assert config.data_source == "ccxt:binance"


def test_a_stablecoin_pair_is_never_picked_by_volume_but_may_be_named(live):
    tickers = dict(live.provider.market_volumes("1h"))  # what the exchange reports, unfiltered
    assert max(tickers, key=tickers.get) == "USDC/USDT"  # the most traded pair of all
    config = live.factory.create_ranking_config(markets=10, top_k=3)
    assert "USDC/USDT" not in config.markets
    assert config.markets == emulator_top(live.server, 10)
    assert "USDC/USDT" not in dict(live.factory.market_volumes("1h"))
    named = live.factory.create_ranking_config(symbols=["usdc", "BTC/USDT"], top_k=1)
    assert named.markets == ["USDC/USDT", "BTC/USDT"]  # named by the trader: ranked


def test_excluded_bases_can_be_switched_off_or_changed(binance, monkeypatch):
    live_env(monkeypatch, binance.url, EXCLUDED_BASES="")
    live = build_live(binance)
    config = live.factory.create_ranking_config(markets=10, top_k=3)
    assert config.markets == emulator_top(binance, 10, skip=("QUIET/USDT",))
    assert config.markets[0] == "USDC/USDT"
    live_env(monkeypatch, binance.url, EXCLUDED_BASES="usdc, BTC")
    live = build_live(binance)
    volumes = dict(live.factory.market_volumes("1h"))
    assert "USDC/USDT" not in volumes and "BTC/USDT" not in volumes and "ETH/USDT" in volumes


@pytest.mark.parametrize(
    "symbols, words",
    [
        ("BTC/USDT,FOO/USDT", "unknown market FOO/USDT: binance has no such spot pair"),
        ("BTC/USDT,LUNA/USDT", "LUNA/USDT is not trading on binance (inactive or halted)"),
        ("BTC/USDT,NEW/USDT", "NEW/USDT has only 99 1h candles"),
        ("BTC/USDT,QUIET/USDT", "QUIET/USDT had no trades in 33% of its last 500 1h candles"),
    ],
)
def test_a_pair_that_cannot_be_ranked_is_refused_by_name_and_nothing_is_written(live, symbols, words):
    live.provider.market_volumes("1h")  # the shared market list is cached (not the analysis's)
    # The shared candle cache, and the Prometheus counter of the fetches it made (they happened).
    shared = (b"block:", b"series:", b"exchange:", b"ratelimit:", b":metrics")
    before = {k: v for k, v in redis_snapshot(live.runtime.redis).items() if not any(p in k for p in shared)}
    live.server.reset_counts()
    with pytest.raises(InvalidConfig) as refused:
        config = live.factory.create_ranking_config(symbols=symbols.split(","), top_k=1)
        live.service.start(config, _actor())
    assert words in str(refused.value) and "\n" not in str(refused.value)
    after = {k: v for k, v in redis_snapshot(live.runtime.redis).items() if not any(p in k for p in shared)}
    assert after == before and not live.queue.queue
    if "unknown" in words or "not trading" in words:
        assert live.server.count("/api/v3/klines") == 0  # refused before any candle is asked for


def _actor():
    from analysis.service import Actor

    return Actor(f"user-{uuid.uuid4().hex[:8]}")


@pytest.mark.slow
def test_cli_markets_lists_the_candidates_with_their_24h_quote_volume(live):
    env = {**os.environ}
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "markets", "--limit", "5"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "most traded first" in lines[0] and "binance" in lines[0]
    rows = [line.split() for line in lines[2:]]
    expected = live.factory.market_volumes("1h")[:5]
    assert [(r[0], float(r[1].replace(",", ""))) for r in rows] == [
        (symbol, pytest.approx(volume, abs=1)) for symbol, volume in expected
    ]
    assert "LUNA/USDT" not in done.stdout and "ETH/BTC" not in done.stdout
    assert "USDC/USDT" not in done.stdout  # the most traded pair, but a stablecoin


@pytest.mark.slow
def test_cli_markets_lists_a_stablecoin_pair_when_excluded_bases_is_empty(live):
    env = {**os.environ, "EXCLUDED_BASES": ""}
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "markets", "--limit", "3"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[2].split()[0] == "USDC/USDT"


# --- which candles -------------------------------------------------------------------------------
def test_only_closed_candles_are_ranked_and_the_status_names_source_and_close_time(live):
    actor = _actor()
    config = live.factory.create_ranking_config(symbols=["BTC/USDT", "ETH/USDT", "SOL/USDT"], top_k=2)
    gist = live.service.start(config, actor)
    assert live.queue.drain(live.runtime)[-1] == "completed"
    done = live.service.get(gist.id, actor)
    frames = live.runtime.snapshots.load(gist.id, config.markets)
    open_candle = live.server.markets["BTC/USDT"].candles[-1]
    newest_closed = closed_frame(live.server, "BTC/USDT").iloc[-1]
    assert frames["BTC/USDT"].index[-1] == newest_closed.name
    assert int(frames["BTC/USDT"].index[-1].value // 10**6) == int(open_candle[0]) - HOUR_MS
    assert len(frames["BTC/USDT"]) == live.settings.window_candles
    document = live.service.status_document(gist.id, actor)
    closes = {r["symbol"]: r["indicators"]["close"] for r in document["result"]}
    for symbol, close in closes.items():
        assert close == pytest.approx(closed_frame(live.server, symbol)["close"].iloc[-1], rel=1e-12)
    hour_open = pd.Timestamp(int(open_candle[0]), unit="ms", tz="UTC")
    label = f"binance · 1h candles to {hour_open:%H:%M} UTC"
    assert document["source"]["label"] == label == done.source_label()
    assert document["source"]["candles_to"] == hour_open.isoformat().replace("+00:00", "Z")
    from bot.views import card_text
    from cli.main import describe

    assert label in card_text(done) and label in describe(done)
    assert "DEMO" not in card_text(done)


def test_a_window_longer_than_one_request_is_paged(binance, monkeypatch):
    live_env(monkeypatch, binance.url, WINDOW_CANDLES="1500")
    binance.reset_counts()
    live = build_live(binance)
    frame = live.provider.candles("ETH/USDT", "1h", 1500)
    expected = closed_frame(binance, "ETH/USDT").iloc[-1500:]
    assert frame.index.equals(expected.index)
    assert np.array_equal(frame.to_numpy(), expected.to_numpy())
    klines = [r for r in binance.requests if r.path == "/api/v3/klines"]
    assert len(klines) == 2 and all(int(r.query["limit"]) <= 1000 for r in klines)


def test_candle_rows_are_cleaned_deliberately():
    from analysis.markets.candle_rows import MalformedAnswer, check_rows, fill_gaps, frame_from_rows

    t0 = 1_700_000_000 // HOUR * HOUR
    rows = [[(t0 + i * HOUR) * 1000, 10 + i, 11 + i, 9 + i, 10.5 + i, 5.0] for i in range(6)]
    rows.insert(3, [(t0 + 2 * HOUR) * 1000, 99, 100, 98, 99.5, 7.0])  # duplicate: last wins
    del rows[5]  # a gap at t0 + 4 h
    frame = fill_gaps(frame_from_rows(check_rows(rows, "x"), t0, t0 + 4 * HOUR), HOUR, t0 + 4 * HOUR)
    assert len(frame) == 5  # the candle opening at t0 + 5 h is still open: dropped
    assert frame["close"].iloc[2] == 99.5
    gap = frame.iloc[4]
    assert (gap["open"], gap["high"], gap["low"], gap["close"], gap["volume"]) == (13.5,) * 4 + (0.0,)
    for bad in (
        [t0 * 1000, "x", 1, 1, 1, 1],
        [t0 * 1000, 1, 1, 1, float("nan"), 1],
        [t0 * 1000, 1, 0.5, 2, 1, 1],
        [t0 * 1000, 1, 1, 1, 1],
        "not a list",
    ):
        with pytest.raises(MalformedAnswer):
            check_rows([bad] if not isinstance(bad, str) else bad, "x")


# --- one fetch, many analyses ------------------------------------------------------------------
def test_a_second_analysis_in_the_same_candle_makes_no_exchange_request_and_shares_blocks(live):
    symbols = emulator_top(live.server, 8)
    first = live.service.start(live.factory.create_ranking_config(symbols=symbols, top_k=3), _actor())
    live.queue.drain(live.runtime)
    requests_first = len(live.server.requests)
    assert live.server.count("/api/v3/klines") == 8  # one per market (the factory's check filled the cache)
    blocks_after_first = set(live.runtime.redis.scan_iter(f"{live.settings.key_prefix}block:*"))

    second = live.service.start(live.factory.create_ranking_config(symbols=symbols, top_k=3), _actor())
    live.queue.drain(live.runtime)
    assert len(live.server.requests) == requests_first  # not one more request
    blocks_after_second = set(live.runtime.redis.scan_iter(f"{live.settings.key_prefix}block:*"))
    assert blocks_after_second == blocks_after_first  # the snapshot is no second copy
    key = live.runtime.keys.candles
    refs = [
        {
            s: json.loads(v)["blocks"]
            for s, v in ((k.decode(), v) for k, v in live.runtime.redis.hgetall(key(g.id)).items())
        }
        for g in (first, second)
    ]
    assert refs[0] == refs[1]
    assert ranking(live.service.get(first.id, _admin())) == ranking(live.service.get(second.id, _admin()))


def _admin():
    from analysis.service import Actor

    return Actor("admin", is_admin=True)


def test_after_a_candle_closes_only_the_new_candle_is_fetched(live):
    frame = live.provider.candles("SOL/USDT", "1h", 500)
    live.server.reset_counts()
    live.provider.cache.clock = lambda: time.time() + HOUR  # the open candle has closed
    later = live.provider.candles("SOL/USDT", "1h", 500)
    klines = [r for r in live.server.requests if r.path == "/api/v3/klines"]
    assert len(klines) == 1
    assert int(klines[0].query["startTime"]) == int(frame.index[-1].value // 10**6) + HOUR_MS
    assert later.index[-1] == frame.index[-1] + pd.Timedelta(hours=1)
    assert later.iloc[:-1].equals(frame.iloc[1:])
    live.server.reset_counts()
    for _ in range(3):
        live.provider.candles("SOL/USDT", "1h", 500)
    assert live.server.count() == 0


# --- faults ------------------------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["429", "418", "503", "timeout", "malformed rows", "not json"])
@pytest.mark.slow
def test_passing_faults_are_retried_and_the_candles_are_whole(live, fault):
    server, slept = live.server, []
    live.provider.sleep = slept.append
    live.provider.candles("XRP/USDT", "1h", 300)  # markets loaded, cache warm
    live.provider.cache.clock = lambda: time.time() + HOUR
    {
        "429": lambda: server.fail_next(2, status=429, retry_after=0.3, path="/api/v3/klines"),
        "418": lambda: server.fail_next(1, status=418, retry_after=0.2, path="/api/v3/klines"),
        "503": lambda: server.fail_next(2, status=503, path="/api/v3/klines"),
        "timeout": lambda: server.delay_next(1, 4, path="/api/v3/klines"),
        "malformed rows": lambda: server.malformed_next(1),
        "not json": lambda: server.malformed_next(1, kind="json"),
    }[fault]()
    server.reset_counts()
    frame = live.provider.candles("XRP/USDT", "1h", 300)
    assert frame.index[-1] == pd.Timestamp(
        int(server.markets["XRP/USDT"].candles[-1, 0]), unit="ms", tz="UTC"
    )
    assert np.isfinite(frame.to_numpy()).all()
    assert server.count("/api/v3/klines") >= 2  # asked again
    if fault == "429":
        assert slept[:2] == [0.3, 0.3]  # Retry-After honoured over the shorter backoff


def test_a_failure_that_lasts_names_the_exchange_and_what_failed(live):
    live.provider.sleep = lambda s: None
    live.server.fail_next(10, status=503, path="/api/v3/klines", symbol="DOGE/USDT")
    with pytest.raises(DataUnavailable) as failed:
        live.provider.candles("DOGE/USDT", "1h", 300)
    assert str(failed.value) == "binance answered HTTP 503 for DOGE/USDT 1h candles (4 tries)"
    assert live.server.count("/api/v3/klines", "DOGE/USDT") == 4  # CCXT_RETRIES=3: bounded


@pytest.mark.slow
def test_an_exchange_that_cannot_be_reached_at_start_gets_a_one_line_answer(monkeypatch):
    live_env(monkeypatch, f"http://127.0.0.1:{free_port()}")
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "start", "--markets", "5"],
        cwd=ROOT,
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "error: binance cannot be reached for its market list (2 tries)"
    assert done.stdout == ""


def test_exchange_down_mid_run_pauses_with_the_reason_and_resume_completes(live):
    actor = _actor()
    config = live.factory.create_ranking_config(symbols=["BTC/USDT", "ETH/USDT", "LINK/USDT"], top_k=2)
    gist = live.service.start(config, actor)
    live.provider.sleep = lambda s: None
    live.provider.cache.clock = lambda: time.time() + HOUR  # a candle closed before INIT ran
    live.server.down = True
    live.queue.drain(live.runtime)
    paused = live.service.get(gist.id, actor)
    assert paused.status == Status.PAUSED
    assert paused.reason == "binance answered HTTP 503 for BTC/USDT 1h candles (4 tries)"
    assert live.runtime.redis.exists(live.runtime.keys.candles(gist.id)) == 0
    live.server.down = False
    assert live.service.resume(gist.id, actor).changed
    live.queue.drain(live.runtime)
    assert live.service.get(gist.id, actor).status == Status.COMPLETED


def test_pause_resume_and_refine_rank_the_same_data_as_an_uninterrupted_run(live):
    actor = _actor()
    config = live.factory.create_ranking_config(markets=12, top_k=4)
    plain = live.service.start(config, actor)
    live.queue.drain(live.runtime)
    live.service.refine(plain.id, actor)
    live.queue.drain(live.runtime)

    broken = live.service.start(config, actor)
    live.queue.drain(live.runtime, limit=2)  # INIT and one step
    live.service.pause(broken.id, actor)
    live.queue.drain(live.runtime)
    live.provider.cache.clock = lambda: time.time() + 2 * HOUR  # the market moved on meanwhile
    live.service.resume(broken.id, actor)
    live.queue.drain(live.runtime)
    live.service.refine(broken.id, actor)
    live.queue.drain(live.runtime)
    a, b = live.service.get(plain.id, actor), live.service.get(broken.id, actor)
    assert a.status == b.status == Status.COMPLETED and a.refine_gen == b.refine_gen == 1
    assert ranking(a) == ranking(b)
    frames_a = live.runtime.snapshots.load(a.id, config.markets)
    frames_b = live.runtime.snapshots.load(b.id, config.markets)
    assert all(frames_a[s].equals(frames_b[s]) for s in config.markets)


def test_init_ranks_the_candles_the_trader_was_shown_even_after_more_closed(live):
    actor = _actor()
    config = live.factory.create_ranking_config(symbols=["BTC/USDT", "ETH/USDT"], top_k=1)
    live.provider.cache.clock = lambda: time.time() + 3 * HOUR  # INIT runs 3 candles later
    gist = live.service.start(config, actor)
    live.queue.drain(live.runtime)
    frames = live.runtime.snapshots.load(gist.id, config.markets)
    newest = closed_frame(live.server, "BTC/USDT").index[-1]
    assert (
        frames["BTC/USDT"].index[-1] == newest == pd.Timestamp(config.candles_to - HOUR, unit="s", tz="UTC")
    )
    assert len(frames["BTC/USDT"]) == live.settings.window_candles


def test_the_indicators_of_a_live_analysis_equal_those_of_the_csv_source(live, tmp_path):
    from analysis.config_factory import RankingConfigFactory
    from analysis.markets.csv_dir import CsvDirProvider

    symbols = ["BTC/USDT", "PEPE/USDT", "AAVE/USDT", "WLD/USDT"]
    for symbol in symbols:
        frame = closed_frame(live.server, symbol)
        frame.index = frame.index.strftime("%Y-%m-%dT%H:%M:%SZ")
        frame.to_csv(tmp_path / f"{symbol.replace('/', '_')}-1h.csv", index_label="timestamp")
    actor = _actor()
    results = []
    for factory in (live.factory, RankingConfigFactory(live.settings, CsvDirProvider(tmp_path))):
        gist = live.service.start(factory.create_ranking_config(symbols=symbols, top_k=2), actor)
        live.queue.drain(live.runtime)
        results.append(live.service.status_document(gist.id, actor)["result"])
    assert results[0] == results[1]
    assert len(results[0][0]["indicators"]) >= 5


# --- rate limits -------------------------------------------------------------------------------
def test_the_shared_token_bucket_spaces_every_caller_to_the_rate(runtime):
    from analysis.markets.rate_limit import TokenBucket

    key = f"test-bucket:{uuid.uuid4().hex}"
    waits: list[float] = []
    now_ms = [1_000_000]  # time stands still while the 60 requests are asked for
    buckets = [
        TokenBucket(
            runtime.redis, key, rate_per_s=20, capacity=20, sleep=waits.append, clock_ms=lambda: now_ms[0]
        )
        for _ in range(3)
    ]  # three processes
    for i in range(60):
        buckets[i % 3].take(1)
    # 20 at once (the burst), then one every 50 ms: the 60th waits 2 s.
    assert waits == [pytest.approx(0.05 * n) for n in range(1, 41)]
    now_ms[0] += 2000  # when the last one has gone, the bucket is empty: the next one waits too
    assert buckets[0].take(1) == pytest.approx(0.05)


# --- real workers ------------------------------------------------------------------------------
@pytest.mark.slow
def test_real_workers_share_the_cache_two_analyses_fetch_each_market_once(binance, tmp_path):
    from analysis.config_factory import RankingConfigFactory
    from analysis.markets.ccxt_source import CcxtProvider
    from tests.stack import Stack

    stack = Stack(
        {"MARKET_DATA": "ccxt:binance", "CCXT_API_URL": binance.url, "CCXT_BACKOFF_S": "0.01"},
        name="live",
        log_dir=tmp_path,
    )
    try:
        stack.start_worker(1)
        binance.reset_counts()
        # The CLI-like front only picks the markets by volume (one tickers call, no candles):
        factory = RankingConfigFactory(
            stack.settings, CcxtProvider("binance", stack.settings, client=stack.runtime.redis)
        )
        symbols = [s for s, _ in factory.market_volumes("1h") if s in set(emulator_top(binance, 6))]
        binance.reset_counts()
        actor = _actor()
        config = factory.create_ranking_config(symbols=symbols, top_k=2)
        first = stack.service.start(config, actor)
        wait_for_status(stack.service, first.id, actor, ["COMPLETED"], timeout=60)
        klines = binance.count("/api/v3/klines")
        assert klines == 6
        second = stack.service.start(config, actor)
        wait_for_status(stack.service, second.id, actor, ["COMPLETED"], timeout=60)
        assert binance.count("/api/v3/klines") == klines
        assert ranking(stack.service.get(first.id, actor)) == ranking(stack.service.get(second.id, actor))
    finally:
        stack.close()


def test_processes_asking_for_the_same_candles_at_once_fetch_them_once(live):
    import threading

    from analysis.markets.ccxt_source import CcxtProvider

    symbols = ["ATOM/USDT", "AVAX/USDT", "BCH/USDT", "CRV/USDT"]
    providers = [CcxtProvider("binance", live.settings) for _ in range(4)]  # own clients each
    for provider in providers:
        provider.market_volumes("1h")
    live.server.reset_counts()
    barrier = threading.Barrier(len(providers))
    frames = {}

    def fetch(i, provider):
        barrier.wait()
        frames[i] = [provider.candles(s, "1h", 700) for s in symbols]

    threads = [threading.Thread(target=fetch, args=(i, p)) for i, p in enumerate(providers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert live.server.count("/api/v3/klines") == len(symbols)
    assert all(a.equals(b) for i in frames for a, b in zip(frames[0], frames[i]))
    assert sum(p.cache.fetches for p in providers) == len(symbols)


def test_the_bot_answers_in_one_line_when_the_exchange_cannot_be_reached(monkeypatch):
    from sandbox import BotApiServer
    from tests.test_bot import People, RunningBot, ask, bot_settings

    url = f"http://127.0.0.1:{free_port()}"
    live_env(monkeypatch, url)  # the bot process's settings: the source is built from them
    from analysis.markets.registry import provider_from_spec
    from analysis.settings import get_settings

    get_settings.cache_clear()
    provider_from_spec.cache_clear()
    people = People()
    with BotApiServer(token=f"{uuid.uuid4().int % 10**8}:TEST") as api:
        settings = bot_settings(api, people, market_data="ccxt:binance", ccxt_api_url=url)
        with RunningBot(api, settings):
            ack = ask(api, people.trader, "/rank markets=5")
            api.wait_for(lambda: len(api.messages(people.trader, from_bot=True)) >= 2, timeout=20)
            replies = [m.text for m in api.messages(people.trader, from_bot=True)]
    assert ack == "Choosing the 5 most-traded markets on binance…"
    assert replies == [ack, "Sorry — binance cannot be reached for its market list (2 tries)."]


def test_the_bot_says_at_once_what_it_is_choosing_then_posts_the_card(binance, monkeypatch):
    """A cold /rank markets=N fetches one market's candles after another before the config is
    fixed; the trader is told what is going on before the first candle is asked for."""
    from sandbox import BotApiServer
    from tests.test_bot import People, RunningBot, analysis_id_of, ask, bot_settings, wait_for_card

    live_env(monkeypatch, binance.url)  # a key prefix of its own: a cold candle cache
    binance.clear_faults()
    binance.reset_counts()
    live = build_live(binance)
    people = People()
    wall_minus_monotonic = time.time() - time.monotonic()
    with BotApiServer(token=f"{uuid.uuid4().int % 10**8}:TEST") as api:
        settings = bot_settings(api, people, market_data="ccxt:binance", ccxt_api_url=binance.url)
        with RunningBot(api, settings) as bot:
            mark = api.mark()
            ack = ask(api, people.trader, "/rank markets=12 top=3")
            card = wait_for_card(api, people.trader, timeout=60)
            refused = ask(api, people.trader, "/rank markets=1000")  # refused at once: no ack
            requests = len(binance.requests)
            too_high = ask(api, people.trader, "/rank markets=5 top=50")  # nor for a bad top
            low_target = ask(api, people.trader, "/rank markets=5 target=0.2")  # or target
            fetched_for_refusals = len(binance.requests) - requests
            gist = bot.service.get(analysis_id_of(card), _admin())
    assert ack == "Choosing the 12 most-traded markets on binance…"
    sent = api.calls_of("sendMessage", since=mark)
    assert sent[0].result["text"] == ack
    first_klines = min(r.at for r in binance.requests if r.path == "/api/v3/klines")
    assert sent[0].received + wall_minus_monotonic < first_klines
    assert "binance · 1h candles to" in card.text
    assert gist.config.markets == emulator_top(binance, 12)  # stablecoin and halted pairs left out
    assert refused == "Sorry — 1000 markets is too many; the limit is 100."
    assert too_high == "Sorry — top 50 is larger than the 5 markets to rank."
    assert low_target == "Sorry — target must be a confidence between 0.5 and 0.99, not '0.2'."
    assert fetched_for_refusals == 0  # refused before anything was asked of the exchange
    assert live.provider.remote and not live.factory.choice_words(markets=1000)
    assert not live.factory.choice_words(markets=5, top_k=50)


def test_a_snapshot_saved_before_candle_blocks_still_loads(runtime):
    from analysis.markets.candle_blocks import encode_candles
    from analysis.markets.demo import DemoProvider

    frame = DemoProvider().candles("BTC/USDT", "1h", 400)
    analysis_id = uuid.uuid4().hex[:10]
    runtime.redis.hset(runtime.keys.candles(analysis_id), "BTC/USDT", encode_candles(frame))
    loaded = runtime.snapshots.load(analysis_id, ["BTC/USDT"])["BTC/USDT"]
    assert loaded.index.equals(frame.index) and np.array_equal(loaded.to_numpy(), frame.to_numpy())
