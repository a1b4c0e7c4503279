"""What a process needs to run analyses, built once per process: Redis, the store, the data
source, the snapshot store. Workers, the bot and the CLI each build one from settings."""

import logging
from dataclasses import dataclass
from functools import cached_property

import redis

from analysis.keys import Keys
from analysis.market_data.base import MarketDataProvider, provider_from_spec
from analysis.settings import Settings
from analysis.snapshot import CandleSnapshot
from analysis.store import AnalysisStore

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings

    @cached_property
    def redis(self) -> redis.Redis:
        # Retries on connection errors ride out a Redis restart instead of failing the step.
        from redis.backoff import ExponentialBackoff
        from redis.retry import Retry

        return redis.Redis.from_url(
            self.settings.redis_url,
            retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=20),
            retry_on_error=[redis.ConnectionError, redis.TimeoutError],
            health_check_interval=30,
        )

    @cached_property
    def keys(self) -> Keys:
        return Keys(self.settings.key_prefix)

    @cached_property
    def store(self) -> AnalysisStore:
        return AnalysisStore(self.redis, self.settings)

    @cached_property
    def snapshots(self) -> CandleSnapshot:
        return CandleSnapshot(self.redis, self.keys, self.settings.gist_ttl_s)

    @cached_property
    def provider(self) -> MarketDataProvider:
        return provider_from_spec(self.settings.market_data)
