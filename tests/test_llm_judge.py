"""The LLM judge against a local OpenAI-compatible server, through the real openai client over HTTP."""

from __future__ import annotations

import logging
import random
import socket
import threading
import traceback
from collections.abc import Iterator
from email.utils import formatdate
from itertools import combinations

import pytest

from analysis.errors import JudgeUnavailable
from analysis.ranking.llm_judge import (
    SCHEMA_NAME,
    BadAnswer,
    JudgeStats,
    LLMJudge,
    LLMJudgeUnavailable,
    MemoryResponseCache,
    PairRequest,
    build_messages,
    build_response_format,
    cache_key,
    parse_verdict,
    retry_after_seconds,
)
from tests.openai_server import OpenAIServer

API_KEY = "sk-test-3f9a1c0d7e"
MODEL = "judge-model"
QUESTION = "Which market has the stronger uptrend for a swing entry this week?"
STRENGTHS = {
    "BTC/USDT": 10.0,
    "ETH/USDT": 9.0,
    "SOL/USDT": 8.0,
    "BNB/USDT": 7.0,
    "XRP/USDT": 6.0,
    "ADA/USDT": 5.0,
    "DOGE/USDT": 4.0,
    "AVAX/USDT": 3.0,
    "LINK/USDT": 2.0,
    "DOT/USDT": 1.0,
}


def summary(symbol: str) -> str:
    return f"RSI {40 + STRENGTHS[symbol]:.0f}, MACD histogram rising, ADX {15 + 2 * STRENGTHS[symbol]:.0f}"


def pair(first: str, second: str, question: str = QUESTION) -> PairRequest:
    return PairRequest(first, second, summary(first), summary(second), question)


def batch_of_ten() -> list[PairRequest]:
    """Ten distinct pairs, the weaker market shown first in half of them; DOT/USDT is in exactly one."""
    symbols = list(STRENGTHS)[:6]
    pairs = list(combinations(symbols, 2))[:9]
    requests = [pair(b, a) if i % 2 else pair(a, b) for i, (a, b) in enumerate(pairs)]
    return requests + [pair("DOT/USDT", "LINK/USDT")]


def stronger(request: PairRequest) -> str:
    return max((request.first, request.second), key=STRENGTHS.__getitem__)


class SleepRecorder:
    """Stands in for time.sleep: records the waits, never waits."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self._lock = threading.Lock()

    def __call__(self, seconds: float) -> None:
        with self._lock:
            self.waits.append(seconds)


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(strengths=STRENGTHS, api_key=API_KEY) as srv:
        yield srv


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def cache() -> MemoryResponseCache:
    return MemoryResponseCache()


@pytest.fixture
def make_judge(server: OpenAIServer, sleeps: SleepRecorder, cache: MemoryResponseCache):
    judges: list[LLMJudge] = []

    def make(**overrides) -> LLMJudge:
        settings = dict(
            api_key=API_KEY,
            base_url=server.base_url,
            timeout_s=5.0,
            max_concurrency=4,
            max_retries=3,
            backoff_base_s=0.05,
            backoff_max_s=0.4,
            cache=cache,
            sleep=sleeps,
            rng=random.Random(7),
        )
        settings.update(overrides)
        judge = LLMJudge(**settings)
        judges.append(judge)
        return judge

    yield make
    for judge in judges:
        judge.close()


# -- answers, request shape, cache --------------------------------------------------------------


def test_batch_of_ten_follows_the_strength_table(server, make_judge):
    requests = batch_of_ten()
    verdicts, stats = make_judge().compare_many(requests, model=MODEL)

    assert [(v.first, v.second) for v in verdicts] == [(r.first, r.second) for r in requests]
    assert [v.winner for v in verdicts] == [stronger(r) for r in requests]
    assert all(0.5 < v.confidence <= 1.0 and v.model == MODEL and not v.cached for v in verdicts)
    assert server.calls == 10
    assert stats.calls == 10 and stats.retries == 0 and stats.cache_hits == 0 and stats.failures == 0


def test_request_uses_the_json_schema_format_and_the_exact_symbols(server, make_judge):
    make_judge().compare_many([pair("ETH/USDT", "BTC/USDT")], model=MODEL)

    (recorded,) = server.requests
    assert recorded.model == MODEL
    assert recorded.has_bearer and "authorization" not in recorded.headers
    assert recorded.response_format["type"] == "json_schema"
    schema_spec = recorded.response_format["json_schema"]
    assert schema_spec["name"] == SCHEMA_NAME == "pairwise_verdict" and schema_spec["strict"] is True
    schema = schema_spec["schema"]
    assert schema["required"] == ["winner", "confidence"] and schema["additionalProperties"] is False
    assert schema["properties"]["winner"]["enum"] == ["ETH/USDT", "BTC/USDT"]
    assert schema["properties"]["confidence"]["type"] == "number"

    system, user = recorded.messages
    assert system["role"] == "system" and "exact" in system["content"] and "confidence" in system["content"]
    assert user["role"] == "user"
    text = user["content"]
    assert QUESTION in text
    assert "Market 1: ETH/USDT\nIndicators: " + summary("ETH/USDT") in text
    assert "Market 2: BTC/USDT\nIndicators: " + summary("BTC/USDT") in text
    assert text.index("ETH/USDT") < text.index("BTC/USDT")
    assert "exact symbol" in text
    assert recorded.content is not None and '"winner": "BTC/USDT"' in recorded.content


def test_second_identical_batch_is_served_from_the_cache(server, make_judge, cache):
    judge = make_judge()
    first, _ = judge.compare_many(batch_of_ten(), model=MODEL)
    assert server.calls == 10 and len(cache) == 10

    again, stats = judge.compare_many(batch_of_ten(), model=MODEL)

    assert server.calls == 10  # not paid twice
    assert all(v.cached for v in again)
    assert [(v.winner, v.confidence) for v in again] == [(v.winner, v.confidence) for v in first]
    assert stats == JudgeStats(cache_hits=10)
    assert judge.last_stats == stats


def test_cache_is_keyed_by_model_and_full_prompt(server, make_judge):
    judge = make_judge()
    judge.compare_many([pair("BTC/USDT", "ETH/USDT")], model=MODEL)
    judge.compare_many([pair("BTC/USDT", "ETH/USDT")], model="other-model")
    judge.compare_many([pair("BTC/USDT", "ETH/USDT", question="Which one to short?")], model=MODEL)
    judge.compare_many([pair("ETH/USDT", "BTC/USDT")], model=MODEL)  # order is part of the prompt
    assert server.calls == 4

    request = pair("BTC/USDT", "ETH/USDT")
    key = cache_key(MODEL, build_messages(request), build_response_format(request))
    assert len(key) == 64 and key == cache_key(MODEL, build_messages(request), build_response_format(request))


def test_identical_requests_in_one_batch_are_asked_once(server, make_judge):
    verdicts, stats = make_judge().compare_many([pair("SOL/USDT", "ADA/USDT")] * 3, model=MODEL)
    assert [v.winner for v in verdicts] == ["SOL/USDT"] * 3
    assert server.calls == 1 and stats.calls == 1


def test_stats_count_calls_tokens_and_retries(server, make_judge):
    judge = make_judge()
    judge.compare_many([pair("BTC/USDT", "ETH/USDT")], model=MODEL)  # cached for the next batch
    server.reset()
    server.fail_next(2, status=500)

    requests = [pair("BTC/USDT", "ETH/USDT"), pair("SOL/USDT", "BNB/USDT"), pair("XRP/USDT", "ADA/USDT")]
    _, stats = judge.compare_many(requests, model=MODEL)

    answered = [r for r in server.requests if r.usage is not None]
    assert len(server.requests) == 4 and len(answered) == 2
    assert stats.calls == 4 and stats.retries == 2 and stats.cache_hits == 1 and stats.failures == 0
    assert stats.prompt_tokens == sum(r.usage["prompt_tokens"] for r in answered) > 0
    assert stats.completion_tokens == sum(r.usage["completion_tokens"] for r in answered) > 0
    assert stats.as_dict() == {
        "calls": 4,
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.completion_tokens,
        "retries": 2,
        "cache_hits": 1,
        "failures": 0,
    }


# -- faults that are retried --------------------------------------------------------------------


def test_429_honours_retry_after_then_succeeds(server, make_judge, sleeps):
    server.fail_next(1, status=429, retry_after=2)
    (verdict,), stats = make_judge().compare_many([pair("DOGE/USDT", "XRP/USDT")], model=MODEL)

    assert verdict.winner == "XRP/USDT"
    assert sleeps.waits == [2.0]
    assert stats.calls == 2 and stats.retries == 1
    assert server.calls == 2


def test_429_in_a_batch_honours_retry_after_for_each_refused_call(server, make_judge, sleeps):
    server.fail_next(3, status=429, retry_after=1)
    verdicts, stats = make_judge().compare_many(batch_of_ten(), model=MODEL)

    assert [v.winner for v in verdicts] == [stronger(r) for r in batch_of_ten()]
    assert len(sleeps.waits) == 3 and all(w >= 1 for w in sleeps.waits)
    assert stats.calls == 13 and stats.retries == 3 and server.calls == 13


def test_retry_after_is_capped(server, make_judge, sleeps):
    server.fail_next(1, status=429, retry_after=3600)
    make_judge(max_retry_after_s=5.0).compare_many([pair("BTC/USDT", "ETH/USDT")], model=MODEL)
    assert sleeps.waits == [5.0]


def test_retry_after_as_an_http_date_is_honoured(server, make_judge, sleeps):
    now = 1_800_000_000.0
    server.fail_next(1, status=503, retry_after=formatdate(now + 7, usegmt=True))
    make_judge(clock=lambda: now).compare_many([pair("BTC/USDT", "ETH/USDT")], model=MODEL)
    assert sleeps.waits == [7.0]


def test_retry_after_parsing():
    now = 1_800_000_000.0
    assert retry_after_seconds({"retry-after": "3"}, now=now) == 3.0
    assert retry_after_seconds({"retry-after": "1.5"}, now=now) == 1.5
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}, now=now) == 0.25
    assert retry_after_seconds({"retry-after": formatdate(now + 30, usegmt=True)}, now=now) == 30.0
    assert retry_after_seconds({"retry-after": formatdate(now - 30, usegmt=True)}, now=now) == 0.0
    assert retry_after_seconds({"retry-after": "soon"}, now=now) is None
    assert retry_after_seconds({}, now=now) is None


def test_500_then_success_backs_off_with_full_jitter(server, make_judge, sleeps):
    server.fail_next(3, status=500)
    (verdict,), stats = make_judge().compare_many([pair("LINK/USDT", "AVAX/USDT")], model=MODEL)

    assert verdict.winner == "AVAX/USDT"
    assert stats.calls == 4 and stats.retries == 3
    # full jitter: uniform(0, min(backoff_max_s, backoff_base_s * 2**retry))
    ceilings = [0.05, 0.1, 0.2]
    assert len(sleeps.waits) == 3 and all(0 <= w <= c for w, c in zip(sleeps.waits, ceilings))


def test_timeout_then_success(server, make_judge, sleeps):
    server.delay_next(1, 1.0)
    (verdict,), stats = make_judge(timeout_s=0.25).compare_many([pair("ADA/USDT", "SOL/USDT")], model=MODEL)

    assert verdict.winner == "SOL/USDT"
    assert stats.calls == 2 and stats.retries == 1 and len(sleeps.waits) == 1
    assert server.calls == 2


@pytest.mark.parametrize(
    "script",
    [
        lambda s: s.malformed_next(2),
        lambda s: s.off_schema_next(2),  # a winner outside the pair
        lambda s: s.off_schema_next(1, answer={"winner": "BTC/USDT"}),
        lambda s: s.off_schema_next(1, answer={"winner": "BTC/USDT", "confidence": 1.5}),
        lambda s: s.off_schema_next(1, answer={"winner": "BTC/USDT", "confidence": "high"}),
    ],
    ids=[
        "malformed-json",
        "winner-outside-pair",
        "missing-confidence",
        "confidence-above-1",
        "confidence-text",
    ],
)
def test_unusable_answers_are_retried_and_not_cached(server, make_judge, cache, script):
    script(server)
    (verdict,), stats = make_judge().compare_many([pair("ETH/USDT", "BTC/USDT")], model=MODEL)

    bad_answers = server.calls - 1
    assert verdict.winner == "BTC/USDT" and verdict.confidence <= 1
    assert stats.calls == server.calls and stats.retries == bad_answers >= 1
    assert len(cache) == 1  # only the valid answer


def test_connection_error_is_retried_then_reported(make_judge, sleeps):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nothing listens there
    judge = make_judge(base_url=f"http://127.0.0.1:{port}/v1", max_retries=2)

    with pytest.raises(LLMJudgeUnavailable) as caught:
        judge.compare_many([pair("BTC/USDT", "ETH/USDT")], model=MODEL)

    assert (
        str(caught.value)
        == f"Could not connect to the LLM server at http://127.0.0.1:{port}/v1 after 3 attempts."
    )
    assert caught.value.retryable and caught.value.stats.calls == 3 and len(sleeps.waits) == 2


# -- giving up --------------------------------------------------------------------------------


def test_always_failing_pair_gives_up_after_the_bound_and_keeps_the_others(server, make_judge, cache, sleeps):
    server.fail_always(status=503, symbol="DOT/USDT")
    judge = make_judge(max_retries=3)

    with pytest.raises(JudgeUnavailable) as caught:
        judge.compare_many(batch_of_ten(), model=MODEL)

    err = caught.value
    assert isinstance(err, LLMJudgeUnavailable) and err.retryable
    message = str(err)
    assert message.startswith("The LLM server kept answering 503 after 4 attempts")
    assert "1 of 10 comparisons failed" in message and "the 9 answered are saved" in message
    assert server.calls_for("DOT/USDT") == 4  # exactly max_retries + 1
    assert len(sleeps.waits) == 3
    assert err.stats == JudgeStats(
        calls=13,
        prompt_tokens=err.stats.prompt_tokens,
        completion_tokens=err.stats.completion_tokens,
        retries=3,
        cache_hits=0,
        failures=1,
    )
    assert judge.last_stats == err.stats and len(cache) == 9

    # The resumed step pays only for the comparison that failed.
    server.clear_faults()
    calls_before = server.calls
    verdicts, stats = judge.compare_many(batch_of_ten(), model=MODEL)
    assert server.calls == calls_before + 1
    assert stats.cache_hits == 9 and stats.calls == 1
    assert [v.winner for v in verdicts] == [stronger(r) for r in batch_of_ten()]


def test_401_fails_at_once_naming_the_setting_and_never_the_key(server, make_judge, sleeps, caplog):
    wrong_key = "sk-wrong-5ecr3t-8d1f"
    caplog.set_level(logging.DEBUG)
    judge = make_judge(api_key=wrong_key)

    with pytest.raises(LLMJudgeUnavailable) as caught:
        judge.compare_many(batch_of_ten(), model=MODEL)

    err = caught.value
    assert "OPENAI_API_KEY" in str(err) and "401" in str(err)
    assert not err.retryable
    assert sleeps.waits == []  # not retried
    assert server.calls <= 4  # at most the calls already in flight; the rest are not asked
    assert all(r.outcome == "401" for r in server.requests)
    assert server.requests[0].has_bearer  # the key was sent, as a Bearer token
    shown = str(err) + "".join(traceback.format_exception(err)) + caplog.text
    assert wrong_key not in shown


def test_unknown_model_fails_at_once_naming_the_setting(make_judge, sleeps):
    with OpenAIServer(strengths=STRENGTHS, api_key=API_KEY, models=["good-model"]) as srv:
        judge = make_judge(base_url=srv.base_url)
        with pytest.raises(LLMJudgeUnavailable) as caught:
            judge.compare_many([pair("BTC/USDT", "ETH/USDT")], model="no-such-model")
        assert srv.calls == 1
    assert "OPENAI_MODEL" in str(caught.value) and "no-such-model" in str(caught.value)
    assert sleeps.waits == []


def test_missing_api_key_is_reported_before_any_call(cache):
    with pytest.raises(LLMJudgeUnavailable, match="OPENAI_API_KEY"):
        LLMJudge(
            api_key="",
            base_url="http://127.0.0.1:9/v1",
            timeout_s=1,
            max_concurrency=1,
            max_retries=0,
            backoff_base_s=0.1,
            backoff_max_s=1,
            cache=cache,
        )


# -- answer parsing -------------------------------------------------------------------------------


def test_parse_verdict_accepts_the_contract_and_rejects_the_rest():
    assert parse_verdict('{"winner": "BTC/USDT", "confidence": 0.7}', "BTC/USDT", "ETH/USDT") == (
        "BTC/USDT",
        0.7,
    )
    assert parse_verdict('{"winner": " eth/usdt ", "confidence": 1}', "BTC/USDT", "ETH/USDT") == (
        "ETH/USDT",
        1.0,
    )
    fenced = '```json\n{"winner": "ETH/USDT", "confidence": 0.6}\n```'
    assert parse_verdict(fenced, "BTC/USDT", "ETH/USDT") == ("ETH/USDT", 0.6)
    for content in [
        None,
        "",
        "BTC/USDT",
        "[]",
        '{"winner": "SOL/USDT", "confidence": 0.7}',
        '{"winner": "BTC/USDT", "confidence": -0.1}',
        '{"winner": "BTC/USDT", "confidence": true}',
        '{"confidence": 0.7}',
    ]:
        with pytest.raises(BadAnswer):
            parse_verdict(content, "BTC/USDT", "ETH/USDT")
