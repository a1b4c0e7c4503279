"""A local Binance-compatible REST emulator (spot public endpoints) for tests and benchmarks.

It serves, on 127.0.0.1 and a free port, from an aiohttp application in a background thread:

- `GET /api/v3/time`, `GET /api/v3/ping`
- `GET /api/v3/exchangeInfo`: one spot symbol per market (status TRADING, or BREAK for a halted one)
- `GET /api/v3/ticker/24hr`: all symbols (or `?symbol=`), volume and quote volume over the last
  24 closed candles
- `GET /api/v3/klines?symbol=&interval=1h&startTime=&endTime=&limit=` (default 500, at most 1000:
  more is refused with Binance's error -1130, so a client must page)
- `GET /fapi/v1/exchangeInfo`, `GET /dapi/v1/exchangeInfo`: futures markets ccxt's binance asks
  for when it loads markets with its default options (empty lists here: no futures are served)

The candles are real: the CSV files of a folder (the shared Binance 1h candles) moved in time so
that the newest one opens at the present hour (fixed when the server starts, or `now=`): the
newest candle is the one still open, as on the real exchange. `extra_markets` adds markets made
from those series (e.g. a halted pair with a huge volume, a pair in another quote currency).

Every request is counted (`requests`, `count(path)`) with its query. Faults are scripted for the
next requests, FIFO, optionally only for one path and one symbol: `fail_next(n, status=429,
retry_after=1)`, `fail_next(n, status=418)`, `fail_next(n, status=503)`, `delay_next(n, seconds)`
(answers late, past a client's timeout), `malformed_next(n, kind="rows")` (klines with a row of
non-numbers) or `kind="json"` (a body that is not JSON), `oversized_next(n, factor=2000)` (klines
with the rows asked for repeated, streamed), and `down = True` (every request 503).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from aiohttp import web

HOUR_MS = 3_600_000
MAX_LIMIT = 1000


@dataclass
class _Fault:
    kind: str  # status | delay | malformed
    path: str | None
    symbol: str | None
    status: int = 0
    retry_after: float | None = None
    seconds: float = 0.0
    malformed: str = "rows"
    factor: int = 1


@dataclass
class Market:
    symbol: str  # BTC/USDT
    candles: np.ndarray  # rows: open time ms, open, high, low, close, volume
    status: str = "TRADING"
    volume_boost: float = 1.0

    @property
    def exchange_id(self) -> str:
        return self.symbol.replace("/", "")


@dataclass
class RecordedRequest:
    path: str
    query: dict[str, str]
    at: float
    answer: str = ""


def load_markets(data_dir: Path, now_ms: int, symbols: list[str] | None = None) -> dict[str, Market]:
    """The folder's series moved so that each one's newest candle opens at the hour of `now_ms`."""
    hour_open = now_ms // HOUR_MS * HOUR_MS
    markets = {}
    for path in sorted(Path(data_dir).glob("*_*-1h.csv")):
        symbol = path.name[: -len("-1h.csv")].replace("_", "/", 1)
        if symbols is not None and symbol not in symbols:
            continue
        frame = pd.read_csv(path)
        times = pd.to_datetime(frame["timestamp"], utc=True).dt.as_unit("ms").astype("int64").to_numpy()
        shift = hour_open - int(times[-1])
        rows = np.column_stack(
            [times + shift, frame[["open", "high", "low", "close", "volume"]].to_numpy(float)]
        )
        markets[symbol] = Market(symbol, rows)
    return markets


class BinanceServer:
    """Binance-compatible spot REST server on 127.0.0.1 (see module docstring)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        now: float | None = None,
        symbols: list[str] | None = None,
        extra_markets: list[Market] | None = None,
    ):
        self.now_ms = int((time.time() if now is None else now) * 1000)
        self.markets = load_markets(data_dir, self.now_ms, symbols)
        for market in extra_markets or []:
            self.markets[market.symbol] = market
        self.down = False
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        self.requests: list[RecordedRequest] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "BinanceServer":
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="binance-test-server", daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._serve(sock), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop = None

    def __enter__(self) -> "BinanceServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, sock: socket.socket) -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    # -- scripting and counting ----------------------------------------------------------------
    def fail_next(
        self,
        n: int,
        *,
        status: int,
        retry_after: float | None = None,
        path: str | None = None,
        symbol: str | None = None,
    ) -> None:
        with self._lock:
            self._faults += [
                _Fault("status", path, symbol, status=status, retry_after=retry_after) for _ in range(n)
            ]

    def delay_next(
        self, n: int, seconds: float, *, path: str | None = None, symbol: str | None = None
    ) -> None:
        with self._lock:
            self._faults += [_Fault("delay", path, symbol, seconds=seconds) for _ in range(n)]

    def malformed_next(
        self, n: int, *, kind: str = "rows", path: str | None = "/api/v3/klines", symbol: str | None = None
    ) -> None:
        with self._lock:
            self._faults += [_Fault("malformed", path, symbol, malformed=kind) for _ in range(n)]

    def oversized_next(
        self, n: int, *, factor: int, path: str | None = "/api/v3/klines", symbol: str | None = None
    ) -> None:
        """The next `n` answers carry their rows `factor` times over, streamed (never built in
        memory here), as an exchange that ignores `limit` would send them."""
        with self._lock:
            self._faults += [_Fault("oversized", path, symbol, factor=factor) for _ in range(n)]

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def count(self, path: str | None = None, symbol: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (path is None or r.path == path)
                and (symbol is None or r.query.get("symbol") == symbol.replace("/", ""))
            )

    def paths(self) -> Counter:
        with self._lock:
            return Counter(r.path for r in self.requests)

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()

    def closed_candles(self, symbol: str) -> np.ndarray:
        """The candles a client may rank: every one but the newest, still-open one."""
        rows = self.markets[symbol].candles
        return rows[rows[:, 0] + HOUR_MS <= self.now_ms]

    def _take_fault(self, path: str, symbol: str | None) -> _Fault | None:
        with self._lock:
            for i, fault in enumerate(self._faults):
                if (fault.path is None or fault.path == path) and (
                    fault.symbol is None or fault.symbol.replace("/", "") == symbol
                ):
                    return self._faults.pop(i)
        return None

    # -- the API -------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.Response:
        path, query = request.path, dict(request.query)
        record = RecordedRequest(path, query, time.time())
        with self._lock:
            self.requests.append(record)
        if self.down:
            record.answer = "down"
            return web.Response(status=503, text="Service Unavailable")
        fault = self._take_fault(path, query.get("symbol"))
        if fault is not None:
            record.answer = f"fault:{fault.kind}"
            if fault.kind == "status":
                headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
                body = (
                    {"code": -1003, "msg": "Too many requests; current limit is exceeded."}
                    if fault.status in (418, 429)
                    else {"code": -1001, "msg": "Internal error; unable to process your request."}
                )
                return web.json_response(body, status=fault.status, headers=headers)
            if fault.kind == "delay":
                await asyncio.sleep(fault.seconds)
            if fault.kind == "malformed" and fault.malformed == "json":
                return web.Response(status=200, text="<html>upstream error", content_type="application/json")
        handler = {
            "/api/v3/time": self._time,
            "/api/v3/ping": self._ping,
            "/api/v3/exchangeInfo": self._exchange_info,
            "/api/v3/ticker/24hr": self._ticker,
            "/api/v3/klines": self._klines,
            "/fapi/v1/exchangeInfo": self._futures_info,
            "/dapi/v1/exchangeInfo": self._futures_info,
        }.get(path)
        if handler is None:
            record.answer = "404"
            return web.json_response({"code": -1000, "msg": f"no endpoint {path}"}, status=404)
        status, body = handler(query)
        if fault is not None and fault.kind == "malformed" and isinstance(body, list) and body:
            body = [list(row) for row in body]
            body[len(body) // 2][1:5] = ["oops", None, "NaN", ""]
        record.answer = record.answer or str(status)
        if fault is not None and fault.kind == "oversized" and isinstance(body, list) and body:
            return await self._stream_repeated(request, body, fault.factor)
        return web.json_response(body, status=status)

    @staticmethod
    async def _stream_repeated(request: web.Request, rows: list, factor: int) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        page = json.dumps(rows)[1:-1].encode()
        try:
            await response.write(b"[" + page)
            for _ in range(factor - 1):
                await response.write(b"," + page)
            await response.write(b"]")
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the client stopped reading: what a bounded client does
        return response

    def _time(self, query):
        return 200, {"serverTime": int(time.time() * 1000)}

    def _ping(self, query):
        return 200, {}

    def _futures_info(self, query):
        return 200, {
            "timezone": "UTC",
            "serverTime": int(time.time() * 1000),
            "rateLimits": [],
            "exchangeFilters": [],
            "assets": [],
            "symbols": [],
        }

    def _exchange_info(self, query):
        symbols = [self._symbol_info(m) for m in self.markets.values()]
        return 200, {
            "timezone": "UTC",
            "serverTime": int(time.time() * 1000),
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000}
            ],
            "exchangeFilters": [],
            "symbols": symbols,
        }

    @staticmethod
    def _symbol_info(market: Market) -> dict:
        base, quote = market.symbol.split("/")
        return {
            "symbol": market.exchange_id,
            "status": market.status,
            "baseAsset": base,
            "baseAssetPrecision": 8,
            "quoteAsset": quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT", "MARKET"],
            "icebergAllowed": True,
            "ocoAllowed": True,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": "0.00000001",
                    "maxPrice": "1000000.00000000",
                    "tickSize": "0.00000001",
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": "0.00001000",
                    "maxQty": "9000000.00000000",
                    "stepSize": "0.00001000",
                },
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
        }

    def _ticker(self, query):
        markets = self.markets.values()
        if "symbol" in query:
            markets = [m for m in markets if m.exchange_id == query["symbol"]]
            if not markets:
                return 400, {"code": -1121, "msg": "Invalid symbol."}
        rows = [self._ticker_row(m) for m in markets]
        return 200, rows[0] if "symbol" in query else rows

    def _ticker_row(self, market: Market) -> dict:
        day = self.closed_candles(market.symbol)[-24:]
        volume = float(day[:, 5].sum()) * market.volume_boost
        quote_volume = float((day[:, 4] * day[:, 5]).sum()) * market.volume_boost
        last, first = float(day[-1, 4]), float(day[0, 1])
        return {
            "symbol": market.exchange_id,
            "priceChange": f"{last - first:.8f}",
            "priceChangePercent": f"{100 * (last / first - 1):.3f}",
            "weightedAvgPrice": f"{last:.8f}",
            "prevClosePrice": f"{first:.8f}",
            "lastPrice": f"{last:.8f}",
            "lastQty": "1.0",
            "bidPrice": f"{last:.8f}",
            "bidQty": "1.0",
            "askPrice": f"{last:.8f}",
            "askQty": "1.0",
            "openPrice": f"{first:.8f}",
            "highPrice": f"{float(day[:, 2].max()):.8f}",
            "lowPrice": f"{float(day[:, 3].min()):.8f}",
            "volume": f"{volume:.8f}",
            "quoteVolume": f"{quote_volume:.8f}",
            "openTime": int(day[0, 0]),
            "closeTime": int(day[-1, 0]) + HOUR_MS - 1,
            "firstId": 1,
            "lastId": 2,
            "count": 2,
        }

    def _klines(self, query):
        market = next((m for m in self.markets.values() if m.exchange_id == query.get("symbol")), None)
        if market is None:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        if query.get("interval") != "1h":
            return 400, {"code": -1120, "msg": "Invalid interval."}
        try:
            limit = int(query.get("limit", 500))
            start = int(query["startTime"]) if "startTime" in query else None
            end = int(query["endTime"]) if "endTime" in query else None
        except ValueError:
            return 400, {"code": -1100, "msg": "Illegal characters found in a parameter."}
        if not 1 <= limit <= MAX_LIMIT:
            return 400, {"code": -1130, "msg": "Data sent for parameter 'limit' is not valid."}
        rows = market.candles
        if end is not None:
            rows = rows[rows[:, 0] <= end]
        if start is not None:
            rows = rows[rows[:, 0] >= start][:limit]
        else:
            rows = rows[-limit:]
        return 200, [self._kline(row) for row in rows]

    @staticmethod
    def _kline(row) -> list:
        t = int(row[0])
        return [
            t,
            repr(float(row[1])),
            repr(float(row[2])),
            repr(float(row[3])),
            repr(float(row[4])),
            repr(float(row[5])),
            t + HOUR_MS - 1,
            repr(float(row[4] * row[5])),
            100,
            "0",
            "0",
            "0",
        ]
