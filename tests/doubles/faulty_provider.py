"""A market-data provider that fails now and then, for chaos runs and recovery tests.

`faulty:<rate>:<inner spec>` wraps the provider `<inner spec>` (e.g. `csv:<dir>` or `demo`) so that
each call fails with `DataUnavailable` with probability `<rate>`, like a data source that times out.
The long form `faulty:error=0.2,slow=0.1,delay=0.5,crash=0.01,seed=7:<inner spec>` also makes a
share of the calls slow (`delay` seconds), a share kill their own process with SIGKILL (a poison
step, as when the OOM killer takes a worker), and seeds the randomness. `hold=1` blocks the first
call made by any process over REDIS_URL until the test releases it (`release_hold`): a step a
test acts on is then certainly in flight, whatever the machine's load. Nothing else changes: when
`register()` makes `faulty:` a spec; production code never imports this module, so a production
process refuses the spec.

Every injected fault is logged at WARNING as `injected fault: <kind> ...`, so a chaos run can count
them from the workers' logs, and counted in `FaultyProvider.injected`.
"""

import logging
import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable

import pandas as pd
import redis

from analysis.errors import DataUnavailable, InvalidConfig
from analysis.markets.base import MarketDataProvider
from analysis.markets.registry import provider_from_spec, register_provider

logger = logging.getLogger(__name__)

PREFIX = "faulty:"
USAGE = (
    "faulty:<rate>:<inner spec> or faulty:error=<rate>,slow=<rate>,delay=<s>,crash=<rate>,"
    "hold=<0|1>,seed=<n>:<inner spec>, e.g. faulty:0.2:csv:data/"
)
# The held call's pid, set by the one call that holds; a push to RELEASE_KEY lets it go on.
HOLD_KEY, RELEASE_KEY = "test:faulty:held", "test:faulty:release"
HOLD_TIMEOUT_S = 120


def held_pid(client: redis.Redis) -> int | None:
    """The pid of the process whose call is held, once one is."""
    value = client.get(HOLD_KEY)
    return int(value) if value else None


def release_hold(client: redis.Redis) -> None:
    client.rpush(RELEASE_KEY, "go")


def hold_first_call(call: str) -> None:
    """Block the first call of any process (SET NX decides which) until released."""
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        if client.set(HOLD_KEY, os.getpid(), nx=True):
            logger.warning("injected fault: hold %s (pid %d) until the test releases it", call, os.getpid())
            deadline = time.monotonic() + HOLD_TIMEOUT_S
            # short waits: each below the client's read timeout
            while not client.blpop([RELEASE_KEY], timeout=1) and time.monotonic() < deadline:
                pass
    finally:
        client.close()


class FaultyProvider:
    """Wraps a provider; `error_rate` of the calls raise DataUnavailable, `slow_rate` sleep first,
    `crash_rate` SIGKILL the process."""

    def __init__(
        self,
        inner: MarketDataProvider,
        *,
        name: str,
        error_rate: float,
        slow_rate: float = 0.0,
        delay_s: float = 0.0,
        crash_rate: float = 0.0,
        seed: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        hold: bool = False,
    ):
        self.inner, self.name = inner, name
        self.is_demo, self.label, self.remote = inner.is_demo, inner.label, inner.remote
        self.error_rate, self.slow_rate, self.delay_s = error_rate, slow_rate, delay_s
        self.crash_rate, self.hold = crash_rate, hold
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._sleep = sleep
        self.injected: Counter[str] = Counter()

    def _draw(self) -> tuple[bool, bool, bool]:
        with self._lock:
            draws = [self._random.random() for _ in range(3)]
        return (draws[0] < self.slow_rate, draws[1] < self.error_rate, draws[2] < self.crash_rate)

    def _maybe_fail(self, call: str) -> None:
        if self.hold:
            hold_first_call(call)
        slow, error, crash = self._draw()
        if crash:
            logger.warning("injected fault: crash %s (SIGKILL pid %d)", call, os.getpid())
            os.kill(os.getpid(), signal.SIGKILL)
        if slow and self.delay_s > 0:
            self.injected["slow"] += 1
            logger.warning("injected fault: slow %s (%.2f s)", call, self.delay_s)
            self._sleep(self.delay_s)
        if error:
            self.injected["error"] += 1
            logger.warning("injected fault: error %s", call)
            raise DataUnavailable(f"the market-data source did not answer for {call} (injected fault)")

    def list_markets(self, timeframe: str) -> list[str]:
        self._maybe_fail(f"markets {timeframe}")
        return self.inner.list_markets(timeframe)

    def market_volumes(self, timeframe: str) -> list[tuple[str, float]]:
        self._maybe_fail(f"volumes {timeframe}")
        return self.inner.market_volumes(timeframe)

    def check_symbols(self, symbols: list[str]) -> None:
        self.inner.check_symbols(symbols)

    def candles(self, symbol: str, timeframe: str, limit: int) -> pd.DataFrame:
        self._maybe_fail(f"candles {symbol} {timeframe}")
        return self.inner.candles(symbol, timeframe, limit)


def parse_faulty_spec(spec: str) -> tuple[dict[str, float], str]:
    """('faulty:error=0.2,seed=3:demo') -> ({'error': 0.2, 'seed': 3.0}, 'demo')."""
    if not spec.startswith(PREFIX) or spec.count(":") < 2:
        raise InvalidConfig(f"{spec!r} is not a faulty data source: use {USAGE}")
    params_text, inner = spec[len(PREFIX) :].split(":", 1)
    params: dict[str, float] = {}
    try:
        if "=" not in params_text:
            params["error"] = float(params_text)
        else:
            for part in params_text.split(","):
                key, value = part.split("=", 1)
                params[key.strip()] = float(value)
    except ValueError:
        raise InvalidConfig(f"{spec!r} has malformed fault parameters: use {USAGE}") from None
    unknown = set(params) - {"error", "slow", "delay", "crash", "hold", "seed"}
    rates_ok = all(0.0 <= params.get(k, 0.0) <= 1.0 for k in ("error", "slow", "crash", "hold"))
    if (
        unknown
        or not rates_ok
        or params.get("delay", 0.0) < 0
        or not inner
        or params.get("hold", 0.0) not in (0.0, 1.0)
    ):
        raise InvalidConfig(f"{spec!r} has invalid fault parameters: use {USAGE}")
    return params, inner


def faulty_provider(spec: str) -> FaultyProvider:
    params, inner = parse_faulty_spec(spec)
    seed = params.get("seed")
    return FaultyProvider(
        provider_from_spec(inner),
        name=spec,
        error_rate=params.get("error", 0.0),
        slow_rate=params.get("slow", 0.0),
        delay_s=params.get("delay", 0.0),
        crash_rate=params.get("crash", 0.0),
        seed=None if seed is None else int(seed),
        hold=params.get("hold", 0.0) == 1.0,
    )


def register() -> None:
    register_provider("faulty", lambda argument: faulty_provider(PREFIX + argument), usage=USAGE)
