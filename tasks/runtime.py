"""The worker process's Runtime, built on first use after the fork."""

from functools import lru_cache

from analysis.engine.runtime import Runtime
from analysis.settings import get_settings


@lru_cache(maxsize=1)
def get_runtime() -> Runtime:
    return Runtime(get_settings())
