"""One typed Settings class, read from the environment and `.env`.

Field names are the environment variables (case-insensitive). `get_settings()` is cached so the
whole process shares one instance; tests call `get_settings.cache_clear()` after changing the
environment.
"""

import sys
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from analysis.health_settings import HealthSettings
from analysis.listener_settings import ListenerSettings
from analysis.redaction import url_without_password
from analysis.setting_checks import market_data_problem, redis_url_problem
from analysis.webhook_settings import WebhookSettings

SHARED_DATA_DEFAULT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "ohlcv-binance-1h"


def _name_list(value: object) -> object:
    """Accept "USDC, fdusd,EUR" or "" from the environment as a list of upper-case names."""
    if isinstance(value, str):
        value = value.split(",")
    if isinstance(value, (list, tuple)):
        return [str(part).strip().upper() for part in value if str(part).strip()]
    return value


# Bases whose price barely moves against a stablecoin quote: USD and EUR stablecoins and fiat
# currencies (Binance spot has USDC/USDT, FDUSD/USDT, TUSD/USDT, USDP/USDT, EUR/USDT, ...; USDT
# itself for another quote). `markets=N` and `marketrank markets` skip them (EXCLUDED_BASES).
# Gold tokens (PAXG, XAUT) move with gold and are not in the list.
STABLE_AND_FIAT_BASES = [
    "USDT",
    "USDC",
    "FDUSD",
    "TUSD",
    "BUSD",
    "USDP",
    "PAX",
    "DAI",
    "USDE",
    "USD1",
    "XUSD",
    "PYUSD",
    "RLUSD",
    "EURI",
    "AEUR",
    "EUR",
    "GBP",
    "AUD",
    "BRL",
    "TRY",
]


def _id_list(value: object) -> object:
    """Accept "1, 2,3" or "" from the environment as a list of ints."""
    if isinstance(value, str):
        parts = [part for part in value.replace(" ", "").split(",") if part]
        bad = [part for part in parts if not part.lstrip("-").isdigit()]
        if bad:
            raise ValueError(
                f"{bad[0]!r} is not a Telegram user id: give numbers, e.g. 123456789,987654321 "
                "(@userinfobot tells a user theirs)"
            )
        return [int(part) for part in parts]
    if isinstance(value, int):
        return [value]
    return value


# Groups of fields kept in their own modules (mixins): the webhook's (analysis/webhook_settings.py),
# the HTTP listener's export and /metrics (analysis/listener_settings.py), the health thresholds
# (analysis/health_settings.py).
class Settings(WebhookSettings, ListenerSettings, HealthSettings, BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    # --- Redis and Celery -------------------------------------------------------------------
    # Empty: the local Redis `make run` starts on REDIS_PORT. Set, it names a Redis to use as is.
    redis_url: str = ""
    # Not 6379: installing Debian's redis-server starts a system Redis there on most machines.
    redis_port: int = Field(6380, ge=1, le=65535)
    key_prefix: str = "mr:"
    # Memory limit of the redis-server `make run` starts (with noeviction; see docs/operations.md).
    redis_maxmemory: str = Field("512mb", pattern=r"^[0-9]+(kb|mb|gb)?$")
    visibility_timeout_s: int = Field(3600, ge=60)
    # Sentinel (docs/operations.md "Redis failover"): host:port,... of the sentinels watching the
    # primary named REDIS_SENTINEL_MASTER. Empty: REDIS_URL's server as is.
    redis_sentinels: str = ""
    redis_sentinel_master: str = "mymaster"
    # With Sentinel: how long a trader's start waits for a replica to hold it (WAIT); 0: never.
    redis_wait_ms: int = Field(100, ge=0, le=10000)
    task_time_limit_s: int = Field(600, ge=10)

    # --- Market data ------------------------------------------------------------------------
    market_data: str = "demo"
    shared_data_dir: Path = SHARED_DATA_DEFAULT
    window_candles: int = Field(500, ge=100, le=5000)
    quote_currency: str = "USDT"
    excluded_bases: Annotated[list[str], NoDecode] = STABLE_AND_FIAT_BASES
    ccxt_api_url: str | None = None
    ccxt_timeout_s: float = Field(10, gt=0)
    ccxt_retries: int = Field(4, ge=0, le=10)
    ccxt_backoff_s: float = Field(1.0, ge=0)
    ccxt_backoff_max_s: float = Field(30.0, ge=0)
    # One exchange answer is read up to this many bytes; a longer one is malformed (retried).
    ccxt_max_answer_bytes: int = Field(32 * 2**20, ge=64 * 1024)
    ccxt_markets_ttl_s: int = Field(3600, ge=1)
    ccxt_tickers_ttl_s: int = Field(300, ge=1)
    candle_cache_ttl_s: int = Field(2 * 24 * 3600, ge=60)
    max_thin_share: float = Field(0.05, ge=0, le=1)

    # --- Analyses ---------------------------------------------------------------------------
    default_markets: int = Field(30, ge=2)
    max_markets: int = Field(100, ge=2)
    default_top_k: int = Field(10, ge=1)
    default_target: float = Field(0.8, gt=0, lt=1)
    score_batch_size: int = Field(8, ge=1, le=100)
    score_views: int = Field(12, ge=2, le=200)
    max_active_per_user: int = Field(3, ge=1)
    # Starts per user in any sliding hour, besides the active limit: with ALLOWED_USER_IDS empty
    # any Telegram user may start analyses, and each start stores a gist for GIST_TTL_S.
    max_starts_per_hour: int = Field(20, ge=1)
    # Finished analyses (completed, cancelled, failed) kept per user: a start deletes the owner's
    # oldest finished ones beyond it, so a user's storage is bounded whatever the TTLs
    # (docs/operations.md sizes Redis from it).
    max_finished_per_user: int = Field(50, ge=1)
    max_prompt_chars: int = Field(500, ge=1)

    # --- Step protocol ----------------------------------------------------------------------
    lease_ms: int = Field(30_000, ge=500)
    heartbeat_ms: int = Field(10_000, ge=100)
    control_ttl_s: int = Field(24 * 3600, ge=10)
    gist_ttl_s: int = Field(30 * 24 * 3600, ge=60)
    # A finished analysis keeps its data snapshot this long after it completed, so it can still be
    # refined; then only the gist, history and result stay (GIST_TTL_S). A cancelled or failed
    # analysis cannot be refined and drops its snapshot at once.
    refine_window_s: int = Field(7 * 24 * 3600, ge=60)
    events_maxlen: int = Field(10_000, ge=100)
    step_retries: int = Field(3, ge=0)
    step_retry_backoff_s: float = Field(1.0, ge=0)

    # --- Watchdog ---------------------------------------------------------------------------
    # A step killed mid-work leaves its lease for at most LEASE_MS; the watchdog re-enqueues it
    # once the lease is gone and nothing moved for WATCHDOG_GRACE_S (counted from the last commit
    # or kick, which is before the killed step began), at its next pass. So the worst case from
    # a kill to the re-enqueue is max(LEASE_MS/1000, WATCHDOG_GRACE_S) + WATCHDOG_INTERVAL_S
    # + WATCHDOG_CONFIRM_S: 30 + 15 + 1 = 46 s with the defaults, under the 60 s promise (plus
    # the step's own run time and its wait in the queue). See `recovery_bound_s`.
    watchdog_interval_s: float = Field(15, gt=0)
    watchdog_grace_s: float = Field(30, gt=0)
    watchdog_max_attempts: int = Field(5, ge=1)
    # A step that looks lost is looked at again this much later, with a fresh read of the broker,
    # before it is re-enqueued (a message being handed to a worker is briefly in no queue).
    watchdog_confirm_s: float = Field(1.0, ge=0, le=30)

    # --- Schedules (recurring analyses, run by beat through the Redis scheduler) ---------------
    # The shortest interval a schedule may have (a cron line may not fire more often either).
    schedule_min_interval_s: int = Field(900, ge=1)
    max_schedules_per_user: int = Field(5, ge=1)
    # A schedule whose runs failed this many times in a row is paused with the reason.
    schedule_max_failures: int = Field(3, ge=1)
    # Beat wakes at least this often, so a new schedule is seen within it; a beat that died
    # without releasing its lock holds the other beats off for 5 times this long.
    beat_max_loop_s: float = Field(5, gt=0)
    # notify=changes (docs/schedules.md): a market enters the top K within K and leaves it only
    # beyond K + SCHEDULE_HYSTERESIS; one announced is not announced again (entered or left) for
    # SCHEDULE_ALERT_COOLDOWN_RUNS runs of its schedule.
    schedule_hysteresis: int = Field(2, ge=0, le=100)
    schedule_alert_cooldown_runs: int = Field(3, ge=0, le=20)

    # --- LLM judge --------------------------------------------------------------------------
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    openai_refine_model: str | None = None
    openai_timeout_s: float = Field(30, gt=0)
    openai_max_concurrency: int = Field(10, ge=1)
    openai_max_retries: int = Field(4, ge=0)
    openai_backoff_base_s: float = Field(1.0, ge=0)
    openai_backoff_max_s: float = Field(30.0, ge=0)
    llm_batch_size: int = Field(10, ge=1, le=50)
    # Markets shown in one LLM call, whose full order is asked (2: one pair per call).
    llm_list_size: int = Field(10, ge=2, le=20)
    # After an llm ranking completes, one more call asks the judge for a short reason per top-K
    # market (docs/explain.md); false skips it.
    llm_reasons: bool = True
    # Data quality (docs/explain.md): a market whose last trade is more than this many candles
    # older than the newest candle ranked is stale and left out; a close beyond this factor of
    # the one before (1.5: +50% or -33% in one candle) is reported as a price jump.
    data_stale_candles: int = Field(24, ge=1)
    data_jump_factor: float = Field(1.5, gt=1)

    # --- Telegram ---------------------------------------------------------------------------
    telegram_bot_token: SecretStr | None = None
    telegram_api_base_url: str = "https://api.telegram.org/bot"
    telegram_api_file_url: str | None = None
    allowed_user_ids: Annotated[list[int], NoDecode] = []
    admin_user_ids: Annotated[list[int], NoDecode] = []
    card_edit_interval_s: float = Field(1.5, ge=0)
    # Without a token, `make run` serves the sandbox (a local Bot API server and chat page) here.
    sandbox_port: int = Field(8080, ge=1, le=65535)
    # Admin alerts (stuck analyses, health turning warning / critical, recovery): the bot reads
    # health this often and sends at most one alert per cause per ALERT_THROTTLE_S.
    health_check_interval_s: float = Field(60, gt=0)
    alert_throttle_s: int = Field(3600, ge=1)
    # The Chart button: a PNG is drawn once per analysis state and kept this long; a user gets
    # at most this many charts a minute (bot/chart_cache.py).
    chart_cache_ttl_s: int = Field(3600, ge=60)
    chart_presses_per_minute: int = Field(5, ge=1)
    # Quiet hours (#24): held messages kept per user (newest), how long, how often the bot looks
    # for windows that have ended to send their digest.
    quiet_max_held: int = Field(50, ge=1, le=1000)
    quiet_held_ttl_s: int = Field(3 * 86400, ge=60)
    quiet_check_interval_s: float = Field(30.0, gt=0)

    # --- Flower -----------------------------------------------------------------------------
    flower_basic_auth: SecretStr | None = None
    flower_port: int = Field(5555, ge=1, le=65535)

    # --- Logs -------------------------------------------------------------------------------
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"

    # --- Track record (pick records and their evaluation; docs/track-record.md) -----------------
    # Pick records and their metrics are kept this long, whatever happens to their analyses.
    track_retention_days: int = Field(180, ge=1, le=3650)
    # Horizons in bars after the entry bar at which every record is scored, and `backtest`'s default:
    # "1,4,24".
    track_horizons: Annotated[list[int], NoDecode] = [1, 4, 24]
    # How often beat sends the evaluation pass (records whose horizons have closed).
    track_eval_interval_s: float = Field(300, gt=0)

    _redis_url_explicit: bool = PrivateAttr(False)

    _split_ids = field_validator("allowed_user_ids", "admin_user_ids", mode="before")(_id_list)
    _split_names = field_validator("excluded_bases", mode="before")(_name_list)

    @field_validator("track_horizons", mode="before")
    @classmethod
    def _horizon_list(cls, value: object) -> object:
        """ "1,4,24" -> [1, 4, 24]: whole bars, each 1..500, sorted, no repeats."""
        if isinstance(value, str):
            parts = [part.strip() for part in value.split(",") if part.strip()]
            bad = [part for part in parts if not part.isdigit()]
            if not parts:
                raise ValueError("give at least one horizon in bars, e.g. 1,4,24")
            if bad:
                raise ValueError(
                    f"give whole numbers of bars separated by commas, e.g. 1,4,24 (not {bad[0]!r})"
                )
            value = [int(part) for part in parts]
        if isinstance(value, (list, tuple)):
            if not value or any(not isinstance(h, int) or not 1 <= h <= 500 for h in value):
                raise ValueError("each horizon must be a whole number of bars from 1 to 500")
            return sorted(set(value))
        return value

    @field_validator("quote_currency")
    @classmethod
    def _quote_upper(cls, value: str) -> str:
        return value.strip().upper()

    @field_validator("ccxt_api_url")
    @classmethod
    def _api_url_is_scheme_and_host(cls, value: str | None) -> str | None:
        if not value:
            return None
        from urllib.parse import urlsplit

        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/"):
            raise ValueError(f"CCXT_API_URL must be scheme://host[:port] with no path, not {value!r}")
        return f"{parts.scheme}://{parts.netloc}"

    @field_validator("key_prefix")
    @classmethod
    def _prefix_ends_with_colon(cls, value: str) -> str:
        return value if value.endswith(":") else value + ":"

    @model_validator(mode="after")
    def _local_redis_unless_named(self) -> "Settings":
        self._redis_url_explicit = bool(self.redis_url)
        if not self.redis_url:
            self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        return self

    @property
    def redis_url_explicit(self) -> bool:
        """REDIS_URL was given: `make run` uses that Redis and starts none of its own."""
        return self._redis_url_explicit

    @model_validator(mode="after")
    def _heartbeat_renews_the_lease_in_time(self) -> "Settings":
        # A heartbeat that comes later than half the lease lets a slow beat (a Redis blip, a busy
        # host) lose the lease of a healthy step, which then cannot commit.
        if self.heartbeat_ms * 2 > self.lease_ms:
            raise ValueError(
                f"HEARTBEAT_MS ({self.heartbeat_ms}) must be at most half of LEASE_MS ({self.lease_ms})"
            )
        return self

    @field_validator("redis_sentinels")
    @classmethod
    def _sentinels_are_host_port(cls, value: str) -> str:
        from analysis.db.connect import sentinel_addresses

        if value.strip():
            sentinel_addresses(value)
        return value.strip()

    @field_validator("redis_url", "market_data")
    @classmethod
    def _url_and_source_parse_as_written(cls, value: str, info: ValidationInfo) -> str:
        """REDIS_URL parses as written (a stray '#' would cut the password into the host);
        MARKET_DATA names a registered source."""
        problem = (redis_url_problem if info.field_name == "redis_url" else market_data_problem)(value)
        if problem:
            raise ValueError(problem)
        return value

    @property
    def recovery_bound_s(self) -> float:
        """Worst case from a worker killed mid-step to the watchdog re-enqueueing that step."""
        return (
            max(self.lease_ms / 1000, self.watchdog_grace_s)
            + self.watchdog_interval_s
            + self.watchdog_confirm_s
        )


@lru_cache
def get_settings() -> Settings:
    return Settings()


def settings_or_exit() -> Settings:
    """get_settings() for a program starting (CLI, worker, bot): a bad setting ends it with one
    `error: bad setting ...` line and exit code 2, not a traceback."""
    try:
        return get_settings()
    except ValidationError as exc:
        print(f"error: {settings_problem(exc)}", file=sys.stderr)
        raise SystemExit(2) from None


# A URL refused because it did not parse may hold a password the mask cannot find.
VALUE_NOT_SHOWN = frozenset({"redis_url"})


def settings_problem(error: ValidationError) -> str:
    """A bad setting in one line naming its environment variable, e.g. `bad setting
    HEALTH_MIN_STEPS=0: Input should be greater than or equal to 1` (a secret's value unshown,
    a URL's password masked)."""
    first = error.errors()[0]
    message = first["msg"].removeprefix("Value error, ")
    if not first["loc"]:  # a rule across settings: its message names them
        return url_without_password(f"bad setting: {message}")
    field = str(first["loc"][0])
    secret = (
        "SecretStr" in str(Settings.model_fields[field].annotation)
        if field in Settings.model_fields
        else True
    )
    secret = secret or field in VALUE_NOT_SHOWN
    value = "".join(ch if ch.isprintable() else "?" for ch in str(first.get("input")))[:60]
    return url_without_password(f"bad setting {field.upper()}{'' if secret else '=' + value}: {message}")
