"""Test set-up: a private redis-server for the whole session (started before any module imports
`tasks`, whose Celery app reads REDIS_URL at import), a real Celery worker, and fixtures."""

import os
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.servers import RedisServer, Worker

# One BLAS thread per process (set before numpy loads; workers inherit it): the tests' matrices are
# small, and several test processes each spinning a thread per core ran a ranking test 5x slower.
for _blas_threads in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_blas_threads, "1")

# Fast protocol timings for tests; each is a setting a deployment tunes too.
TEST_ENV = {
    "LEASE_MS": "3000",
    "HEARTBEAT_MS": "500",
    "WATCHDOG_INTERVAL_S": "1",
    "WATCHDOG_GRACE_S": "4",
    "STEP_RETRY_BACKOFF_S": "0.05",
    "MARKET_DATA": "demo",
    "LOG_LEVEL": "INFO",
    "OPENAI_API_KEY": "",
    "OPENAI_BASE_URL": "",
    "TELEGRAM_BOT_TOKEN": "",
}

_redis: RedisServer | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _redis
    _redis = RedisServer().start()
    os.environ["REDIS_URL"] = _redis.url
    os.environ.update(TEST_ENV)
    from analysis.settings import get_settings

    get_settings.cache_clear()
    from tests.doubles import register

    register()  # steps run in this process too (local_service): the doubles' names are accepted


def pytest_unconfigure(config: pytest.Config) -> None:
    if _redis is not None:
        _redis.cleanup()


@pytest.fixture(scope="session")
def redis_url() -> str:
    return _redis.url


@pytest.fixture(scope="session")
def worker_log_dir() -> str:
    return tempfile.mkdtemp(prefix="marketrank-workers-")


@pytest.fixture(scope="session")
def llm_server():
    """A local OpenAI-compatible server the workers' judge talks to (tests set its strengths)."""
    from tests.openai_server import OpenAIServer

    with OpenAIServer() as server:
        yield server


def worker_env(llm_server) -> dict[str, str]:
    """The workers' environment: the test Redis, and the local LLM server as their judge (the
    test process itself has no LLM configured, so the factory refuses `llm` unless told)."""
    return {
        **os.environ,
        "OPENAI_BASE_URL": llm_server.base_url,
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_MODEL": "judge-small",
        "OPENAI_REFINE_MODEL": "judge-large",
        "OPENAI_TIMEOUT_S": "2",
        "OPENAI_BACKOFF_BASE_S": "0.05",
        "OPENAI_BACKOFF_MAX_S": "0.5",
    }


@pytest.fixture(scope="session")
def worker(worker_log_dir, llm_server):
    """One real Celery worker (prefork, concurrency 2) for the session."""
    w = Worker(worker_env(llm_server), "session", log_dir=worker_log_dir).start()
    yield w
    w.stop()


@pytest.fixture
def settings():
    from analysis.settings import get_settings

    return get_settings()


@pytest.fixture
def runtime(settings):
    from analysis.engine.runtime import Runtime

    return Runtime(settings)


@pytest.fixture
def service(runtime):
    from analysis.service import AnalysisService
    from tasks.dispatcher import CeleryDispatcher

    return AnalysisService(runtime.store, CeleryDispatcher())


@pytest.fixture
def queue():
    """Steps enqueued by `local_service`, run in this process by `queue.drain(runtime)`."""
    from tests.helpers import QueueDispatcher

    return QueueDispatcher()


@pytest.fixture
def local_service(runtime, queue):
    from analysis.service import AnalysisService

    return AnalysisService(runtime.store, queue)


@pytest.fixture
def factory(runtime):
    from analysis.config_factory import RankingConfigFactory

    return RankingConfigFactory(runtime.settings, runtime.provider)


@pytest.fixture
def actor():
    from analysis.service import Actor

    return Actor(f"user-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The real Binance candles in ../shared/data; skipped where absent unless CI requires them."""
    from analysis.settings import Settings

    path = Settings().shared_data_dir
    if not (path / "BTC_USDT-1h.csv").is_file():
        reason = (
            f"real market data not found at {path} (set SHARED_DATA_DIR, or clone beside the shared/ folder)"
        )
        if os.environ.get("REQUIRE_SHARED_DATA") == "1":
            pytest.fail(reason + "; REQUIRE_SHARED_DATA=1 makes this a failure")
        pytest.skip(reason)
    return path


def wait_until(predicate, timeout: float = 30, interval: float = 0.05, message: str = "condition"):
    """Poll `predicate` until it returns a truthy value; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")
