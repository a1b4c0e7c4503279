"""Live public market data through ccxt: `MARKET_DATA=ccxt:<exchange id>` (spot, no API key).

- `CCXT_API_URL` replaces scheme and host of every REST URL in the exchange's `urls['api']`,
  keeping each path (mirrors, proxies, the tests' emulator).
- Markets and 24 h quote volumes are cached in Redis (CCXT_MARKETS_TTL_S, CCXT_TICKERS_TTL_S);
  candles go through the shared `CandleCache`, so a market is fetched at most once per closed
  candle whoever asks, and paged through the exchange's per-request limit.
- Requests: ccxt's own rate limiter per process and a token bucket in Redis across processes
  (rate 1000 / exchange.rateLimit cost units per second, ccxt's figure for the public limit).
  429 (Retry-After honoured), 418, 5xx, timeouts, unreachable and malformed answers are retried
  CCXT_RETRIES times with doubling backoff, then `ExchangeUnavailable` names the exchange and
  what failed; a step pauses with that reason. An answer over CCXT_MAX_ANSWER_BYTES, or with more
  rows than the request's limit, is malformed (bounded_http.py).
"""

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import redis

from analysis.db.connect import redis_client
from analysis.db.keys import Keys
from analysis.errors import DataUnavailable, InvalidConfig
from analysis.markets.base import TIMEFRAMES
from analysis.markets.bounded_http import BoundedSession, check_row_count
from analysis.markets.candle_cache import CandleCache
from analysis.markets.candle_rows import MalformedAnswer, check_rows, frame_from_rows
from analysis.markets.rate_limit import TokenBucket
from analysis.settings import Settings

logger = logging.getLogger(__name__)


class ExchangeUnavailable(DataUnavailable):
    """The exchange failed after the bounded retries (already retried: a step does not retry
    again, it pauses with this reason)."""

    retry = False


def rewrite_api_urls(api: object, base: str) -> object:
    """Every http(s) URL in `urls['api']` (a string or nested dicts) with scheme and host of
    `base` and its own path: https://api.binance.com/api/v3 -> http://127.0.0.1:8123/api/v3."""
    if isinstance(api, str):
        parts = urlsplit(api)
        if parts.scheme in ("http", "https") and parts.netloc:
            return base + api[len(f"{parts.scheme}://{parts.netloc}") :]
        return api
    if isinstance(api, dict):
        return {key: rewrite_api_urls(value, base) for key, value in api.items()}
    if isinstance(api, list):
        return [rewrite_api_urls(value, base) for value in api]
    return api


STATUS_WORDS = {418: "refused requests as too many (HTTP 418)", 429: "rate limited (HTTP 429)"}


def failure_words(exc: Exception, status: int | None) -> str:
    """What went wrong, for a user: 'rate limited (HTTP 429)', 'timed out', ..."""
    import ccxt

    if isinstance(exc, MalformedAnswer):
        return f"sent a malformed answer ({exc})"
    if isinstance(exc, ccxt.RequestTimeout) and (status is None or status < 400):
        return "timed out"
    if status in STATUS_WORDS:
        return STATUS_WORDS[status]
    if status is not None and status >= 400:
        return f"answered HTTP {status}"
    if isinstance(exc, ccxt.RequestTimeout):
        return "timed out"
    if isinstance(exc, ccxt.NetworkError):
        return "cannot be reached"
    return f"failed ({type(exc).__name__})"


def retry_after(headers: dict) -> float:
    """Seconds a 429/418 answer asks to wait (Retry-After in seconds), 0 when it does not say."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    try:
        return max(0.0, float(value)) if value is not None else 0.0
    except (TypeError, ValueError):
        return 0.0


class CcxtProvider:
    is_demo = False
    remote = True

    def __init__(
        self,
        exchange_id: str,
        settings: Settings,
        *,
        client: redis.Redis | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ):
        import ccxt

        if exchange_id not in ccxt.exchanges:
            raise InvalidConfig(
                f"MARKET_DATA=ccxt:{exchange_id}: ccxt has no exchange "
                f"{exchange_id!r} (e.g. binance, okx, kraken)"
            )
        self.exchange_id, self.name, self.label = exchange_id, f"ccxt:{exchange_id}", exchange_id
        self.settings, self.clock, self.sleep = settings, clock, sleep
        # The cache belongs to the exchange *and* the address it is reached at.
        self.source = exchange_id + (
            f"@{urlsplit(settings.ccxt_api_url).netloc}" if settings.ccxt_api_url else ""
        )
        self.redis = client or redis_client(settings)
        self.keys = Keys(settings.key_prefix)
        retries = settings.ccxt_retries
        self.cache = CandleCache(
            self.redis,
            self.keys,
            self.source,
            ttl_s=settings.candle_cache_ttl_s,
            lock_s=settings.ccxt_timeout_s * (retries + 1) + settings.ccxt_backoff_max_s * retries,
            clock=clock,
            sleep=sleep,
        )
        self._exchange = None
        self._lock = threading.RLock()

    # --- the ccxt client ------------------------------------------------------------------
    def exchange(self):
        """The ccxt client, built on first use in this process (it holds an HTTP session, so
        it is never built before a worker forks)."""
        with self._lock:
            if self._exchange is None:
                self._exchange = self._build_exchange()
            return self._exchange

    def _build_exchange(self):
        import ccxt

        base: Any = getattr(ccxt, self.exchange_id)
        bucket_holder: list[TokenBucket] = []

        class SharedLimit(base):
            last_http: tuple[int, dict] | None = None

            def throttle(self, cost=None):
                super().throttle(cost)  # ccxt's limiter: this process
                bucket_holder[0].take(1 if cost is None else cost)  # every process together

            def fetch(self, url, method="GET", headers=None, body=None):
                answer = super().fetch(url, method, headers, body)
                if isinstance(answer, str):  # ccxt hands on a body that is not JSON as text
                    raise MalformedAnswer(f"not JSON: {answer[:40]!r}")
                check_row_count(answer, url)  # before ccxt parses the rows and trims the extra
                return answer

            def on_rest_response(self, code, reason, url, method, headers, body, *rest):
                self.last_http = (int(code), dict(headers or {}))  # kept for errors' words
                return super().on_rest_response(code, reason, url, method, headers, body, *rest)

        exchange = SharedLimit(
            {
                "enableRateLimit": True,
                "timeout": int(self.settings.ccxt_timeout_s * 1000),
                "enableLastResponseHeaders": False,
                "session": BoundedSession(self.settings.ccxt_max_answer_bytes),
            }
        )
        exchange.session.trust_env = exchange.requests_trust_env  # as ccxt sets its own session
        rate = 1000 / max(exchange.rateLimit, 1)
        bucket_holder.append(
            TokenBucket(self.redis, self.keys.rate_limit(self.source), rate_per_s=rate, capacity=rate)
        )
        if self.settings.ccxt_api_url:
            exchange.urls["api"] = rewrite_api_urls(exchange.urls["api"], self.settings.ccxt_api_url)
        # Spot only: where the exchange loads several market types, load spot alone (binance
        # would otherwise also ask its futures APIs).
        fetch_markets = exchange.options.get("fetchMarkets")
        if isinstance(fetch_markets, dict) and "types" in fetch_markets:
            exchange.options["fetchMarkets"] = {**fetch_markets, "types": ["spot"]}
        elif isinstance(fetch_markets, list) and "spot" in fetch_markets:
            exchange.options["fetchMarkets"] = ["spot"]
        exchange.options["defaultType"] = "spot"
        return exchange

    def _call(self, what: str, call: Callable[[], object], retries: int | None = None):
        """`call()` with bounded retries for the faults that pass; ExchangeUnavailable after."""
        import ccxt

        s = self.settings
        retries = s.ccxt_retries if retries is None else retries
        for attempt in range(retries + 1):
            try:
                with self._lock:
                    if self._exchange is not None:
                        self._exchange.last_http = None
                    return call()
            except ccxt.BadSymbol as exc:
                raise InvalidConfig(f"{self.exchange_id} has no market for {what}") from exc
            except (ccxt.OperationFailed, MalformedAnswer, TypeError, ValueError, KeyError) as exc:
                # OperationFailed: network, HTTP 5xx/429/418, bad responses (ccxt's "may pass").
                # TypeError... come from ccxt parsing an answer that is not what the API promises.
                if not isinstance(exc, (ccxt.OperationFailed, MalformedAnswer)):
                    exc = MalformedAnswer(f"{type(exc).__name__} while reading it")
                http = self._exchange.last_http if self._exchange is not None else None
                status = http[0] if http and http[0] >= 400 else None
                words = failure_words(exc, status)
                if attempt == retries:
                    raise ExchangeUnavailable(
                        f"{self.exchange_id} {words} for {what} ({attempt + 1} tries)"
                    ) from exc
                delay = min(s.ccxt_backoff_max_s, s.ccxt_backoff_s * 2**attempt)
                if status in (418, 429) and http is not None:
                    delay = max(delay, min(s.ccxt_backoff_max_s, retry_after(http[1])))
                logger.info(
                    "%s %s for %s (try %d of %d), again in %.2f s",
                    self.exchange_id,
                    words,
                    what,
                    attempt + 1,
                    retries + 1,
                    delay,
                )
                self.sleep(delay)
            except ccxt.BaseError as exc:
                raise DataUnavailable(f"{self.exchange_id} refused {what} ({type(exc).__name__})") from exc
        raise AssertionError("unreachable")

    # --- markets and volumes, cached in Redis ------------------------------------------------
    def _cached(self, what: str, ttl_s: int, compute: Callable[[], object]):
        key = self.keys.exchange(self.source, what)
        raw = self.redis.get(key)
        if raw is not None:
            return json.loads(raw)
        value = compute()
        self.redis.set(key, json.dumps(value, separators=(",", ":")), ex=ttl_s)
        return value

    def _markets(self) -> dict[str, list]:
        """symbol -> [active, spot, quote], for every market of the exchange."""

        def load():
            markets = self._call("its market list", lambda: self.exchange().load_markets(), retries=1)
            return {
                symbol: [m.get("active") is not False, bool(m.get("spot")), m.get("quote")]
                for symbol, m in markets.items()
            }

        return self._cached("markets", self.settings.ccxt_markets_ttl_s, load)

    def _volumes(self) -> dict[str, float]:
        def load():
            tickers = self._call("24 h tickers", lambda: self.exchange().fetch_tickers(), retries=1)
            volumes = {}
            for symbol, t in tickers.items():
                quote_volume = t.get("quoteVolume")
                if quote_volume is None and t.get("baseVolume") is not None and t.get("last"):
                    quote_volume = t["baseVolume"] * t["last"]
                volumes[symbol] = float(quote_volume or 0.0)
            return volumes

        return self._cached("volumes", self.settings.ccxt_tickers_ttl_s, load)

    def market_volumes(self, timeframe: str) -> list[tuple[str, float]]:
        self._check_timeframe(timeframe)
        quote = self.settings.quote_currency
        markets = self._markets()
        volumes = self._volumes()
        candidates = [
            (symbol, volumes.get(symbol, 0.0))
            for symbol, (active, spot, q) in markets.items()
            if active and spot and q == quote
        ]
        return sorted(candidates, key=lambda item: (-item[1], item[0]))

    def list_markets(self, timeframe: str) -> list[str]:
        return [symbol for symbol, _ in self.market_volumes(timeframe)]

    def check_symbols(self, symbols: list[str]) -> None:
        markets = self._markets()
        unknown = [s for s in symbols if s not in markets or not markets[s][1]]
        if unknown:
            raise InvalidConfig(
                f"unknown market {', '.join(unknown[:5])}: {self.exchange_id} has no such spot pair"
            )
        inactive = [s for s in symbols if not markets[s][0]]
        if inactive:
            raise InvalidConfig(
                f"{', '.join(inactive[:5])} is not trading on {self.exchange_id} (inactive or halted)"
            )

    # --- candles -------------------------------------------------------------------------------
    def _check_timeframe(self, timeframe: str) -> None:
        if timeframe not in TIMEFRAMES:
            raise InvalidConfig(f"unknown timeframe {timeframe!r}: use one of {', '.join(TIMEFRAMES)}")

    def candles(self, symbol: str, timeframe: str, limit: int) -> pd.DataFrame:
        self._check_timeframe(timeframe)
        return self.cache.candles(symbol, timeframe, limit, self._fetch_range)

    @property
    def page_limit(self) -> int:
        features = getattr(self.exchange(), "features", None) or {}
        return int((features.get("spot") or {}).get("fetchOHLCV", {}).get("limit") or 500)

    def _fetch_range(self, symbol: str, timeframe: str, since_s: int, until_s: int) -> pd.DataFrame:
        """Closed candles opening in [since_s, until_s], paged through the per-request limit."""
        step_ms, until_ms = TIMEFRAMES[timeframe] * 1000, until_s * 1000
        page, cursor, rows = self.page_limit, since_s * 1000, []
        what = f"{symbol} {timeframe} candles"
        while cursor <= until_ms:
            wanted = min(page, (until_ms - cursor) // step_ms + 1)

            def one_page(since=cursor, limit=wanted):
                answer = self.exchange().fetch_ohlcv(
                    symbol, timeframe, since=since, limit=limit, params={"until": until_ms}
                )
                return check_rows(answer, what)

            batch = self._call(what, one_page)
            rows += batch
            if len(batch) < wanted:
                break  # nothing more up to now (or the exchange ignores `until`)
            newest = max(int(row[0]) for row in batch)
            if newest < cursor:
                break
            cursor = newest + step_ms
        return frame_from_rows(rows, since_s, until_s)
