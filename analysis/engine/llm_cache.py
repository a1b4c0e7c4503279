"""The LLM judge's response cache on Redis: a retried or replayed step never pays twice."""

import redis

from analysis.db.keys import Keys
from analysis.engine.replies import text_or_none

CACHE_TTL_S = 7 * 24 * 3600


class RedisResponseCache:
    """`ResponseCache` of analysis/ranking/llm_judge.py; keys are sha256 digests of model + prompt."""

    def __init__(self, client: redis.Redis, keys: Keys, ttl_s: int = CACHE_TTL_S):
        self.redis, self.keys, self.ttl_s = client, keys, ttl_s

    def get(self, key: str) -> str | None:
        return text_or_none(self.redis.get(self.keys.llm_cache(key)))

    def set(self, key: str, value: str) -> None:
        self.redis.set(self.keys.llm_cache(key), value, ex=self.ttl_s)
