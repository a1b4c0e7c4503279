"""What a process needs to run analyses, built once per process: Redis, the store, the data
source, the snapshot store. Workers, the bot and the CLI each build one from settings."""

import logging
from dataclasses import dataclass, field
from functools import cached_property

import redis

from analysis.db.connect import redis_client
from analysis.db.keys import Keys
from analysis.engine.snapshot import CandleSnapshot
from analysis.engine.store import AnalysisStore
from analysis.markets.base import MarketDataProvider
from analysis.markets.registry import provider_from_spec
from analysis.settings import Settings

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    _judge: object = field(default=None, init=False, repr=False)

    @cached_property
    def redis(self) -> redis.Redis:
        # Retries on connection errors ride out a Redis restart instead of failing the step.
        from redis.backoff import ExponentialBackoff
        from redis.retry import Retry

        return redis_client(
            self.settings,
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

    def judge(self):
        """The LLM judge, built on first use in this process (it holds an HTTP pool, so it is
        never built before a fork)."""
        if self._judge is None:
            from analysis.engine.llm_cache import RedisResponseCache
            from analysis.ranking.llm_judge import LLMJudge

            s = self.settings
            key = s.openai_api_key.get_secret_value() if s.openai_api_key else ""
            # A self-hosted server may take no key; the client still needs a non-empty one.
            self._judge = LLMJudge(
                api_key=key or ("no-key" if s.openai_base_url else ""),
                base_url=s.openai_base_url or None,
                timeout_s=s.openai_timeout_s,
                max_concurrency=s.openai_max_concurrency,
                max_retries=s.openai_max_retries,
                backoff_base_s=s.openai_backoff_base_s,
                backoff_max_s=s.openai_backoff_max_s,
                cache=RedisResponseCache(self.redis, self.keys),
            )
        return self._judge
