"""The listwise LLM judge (issue 14) against the local OpenAI-compatible server, through the real
openai client over HTTP: the market_order contract, malformed orders, cache and cost counters."""

from __future__ import annotations

import json

import pytest

import analysis.ranking.llm_judge as llm_judge
from analysis.ranking.llm_judge import (
    LIST_SCHEMA_NAME,
    BadAnswer,
    ListRequest,
    LLMJudgeUnavailable,
    build_list_response_format,
    parse_ranking,
)
from tests.test_llm_judge import MODEL, QUESTION, cache, make_judge, server, sleeps, summary  # noqa: F401 (fixtures)

SHOWN = ("DOT/USDT", "BTC/USDT", "ADA/USDT", "ETH/USDT", "LINK/USDT")
BEST_FIRST = ("BTC/USDT", "ETH/USDT", "ADA/USDT", "LINK/USDT", "DOT/USDT")


def order_of(shown: tuple[str, ...], question: str = QUESTION) -> ListRequest:
    return ListRequest(shown, tuple(summary(s) for s in shown), question)


def test_one_call_returns_the_full_order_and_uses_the_contract_exactly(server, make_judge):
    (verdict,), stats = make_judge().rank_many([order_of(SHOWN)], model=MODEL)

    assert verdict.ranking == BEST_FIRST and verdict.shown == SHOWN and not verdict.cached
    assert server.calls == stats.calls == 1
    (recorded,) = server.requests
    assert recorded.response_format == {
        "type": "json_schema",
        "json_schema": {
            "name": "market_order",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {
                    "ranking": {"type": "array", "items": {"type": "string", "enum": list(SHOWN)}}
                },
                "required": ["ranking"],
                "additionalProperties": False,
            },
        },
    }
    assert LIST_SCHEMA_NAME == "market_order"
    text = recorded.messages[-1]["content"]
    assert QUESTION in text
    for number, symbol in enumerate(SHOWN, start=1):  # every market, in display order, with its summary
        assert f"Market {number}: {symbol}\nIndicators: {summary(symbol)}" in text
    assert "exactly once" in text


def test_a_batch_of_orders_is_answered_in_request_order(server, make_judge):
    requests = [order_of(SHOWN), order_of(SHOWN[::-1]), order_of(("SOL/USDT", "BNB/USDT"))]
    verdicts, stats = make_judge().rank_many(requests, model=MODEL)

    assert [v.shown for v in verdicts] == [r.shown for r in requests]
    assert [v.ranking for v in verdicts] == [BEST_FIRST, BEST_FIRST, ("SOL/USDT", "BNB/USDT")]
    assert stats.calls == server.calls == 3


@pytest.mark.parametrize(
    "bad",
    [
        {"ranking": list(BEST_FIRST[:-1])},  # misses DOT/USDT
        {"ranking": list(BEST_FIRST[:-1]) + ["BTC/USDT"]},  # repeats BTC/USDT
        {"ranking": list(BEST_FIRST[:-1]) + ["SOL/USDT"]},  # invents a market not shown
        {"ranking": "BTC/USDT"},
        {"order": list(BEST_FIRST)},
    ],
    ids=["misses", "repeats", "invents", "not-a-list", "no-ranking"],
)
def test_an_order_that_misses_repeats_or_invents_is_retried_and_counted(server, make_judge, cache, bad):
    server.off_schema_next(2, answer=bad)
    (verdict,), stats = make_judge().rank_many([order_of(SHOWN)], model=MODEL)

    assert verdict.ranking == BEST_FIRST
    assert server.calls == stats.calls == 3 and stats.retries == 2  # the bad answers are paid for
    assert stats.prompt_tokens == sum(r.usage["prompt_tokens"] for r in server.requests)
    assert len(cache) == 1 and json.loads(next(iter(cache._values.values()))) == {"ranking": list(BEST_FIRST)}


def test_malformed_orders_until_the_bound_make_the_judge_unavailable(server, make_judge, sleeps):
    server.off_schema_next(10, answer={"ranking": list(BEST_FIRST[:2])})
    with pytest.raises(LLMJudgeUnavailable) as raised:
        make_judge(max_retries=2).rank_many([order_of(SHOWN)], model=MODEL)

    assert "left out 3 of the 5 markets" in str(raised.value) and raised.value.retryable
    assert raised.value.stats.calls == server.calls == 3 and raised.value.stats.failures == 1


def test_a_repeated_order_is_served_from_the_cache_and_costs_nothing(server, make_judge):
    judge = make_judge()
    judge.rank_many([order_of(SHOWN)], model=MODEL)
    (again,), stats = judge.rank_many([order_of(SHOWN)], model=MODEL)

    assert again.cached and again.ranking == BEST_FIRST
    assert server.calls == 1 and stats.calls == 0 and stats.cache_hits == 1


def test_cost_counters_match_what_the_server_counted(server, make_judge):
    server.fail_next(1, status=500)
    server.malformed_next(1)
    requests = [order_of(SHOWN), order_of(("SOL/USDT", "XRP/USDT", "DOGE/USDT"))]
    _, stats = make_judge().rank_many(requests, model=MODEL)

    answered = [r for r in server.requests if r.usage]
    assert stats.calls == server.calls == 4 and stats.retries == 2
    assert stats.prompt_tokens == sum(r.usage["prompt_tokens"] for r in answered)
    assert stats.completion_tokens == sum(r.usage["completion_tokens"] for r in answered)


def test_the_server_refuses_a_schema_whose_enum_is_not_the_markets_shown(server, make_judge, monkeypatch):
    """A prompt and schema that disagree are the strategy's bug, not a fault to retry."""
    fmt = build_list_response_format(order_of(SHOWN[:-1]))
    monkeypatch.setattr(llm_judge, "build_list_response_format", lambda _request: fmt)
    with pytest.raises(LLMJudgeUnavailable) as raised:
        make_judge().rank_many([order_of(SHOWN)], model=MODEL)
    assert "HTTP 400" in str(raised.value) and not raised.value.retryable


def test_parse_ranking_forgives_case_and_spaces_and_names_what_is_wrong():
    assert parse_ranking('{"ranking": [" btc/usdt", "ETH/USDT "]}', ("ETH/USDT", "BTC/USDT")) == (
        "BTC/USDT",
        "ETH/USDT",
    )
    with pytest.raises(BadAnswer, match="more than once"):
        parse_ranking('{"ranking": ["BTC/USDT", "BTC/USDT"]}', ("ETH/USDT", "BTC/USDT"))
    with pytest.raises(BadAnswer, match="not shown"):
        parse_ranking('{"ranking": ["BTC/USDT", "SOL/USDT"]}', ("ETH/USDT", "BTC/USDT"))
    with pytest.raises(BadAnswer, match="not valid JSON"):
        parse_ranking('{"ranking": ["BTC', ("ETH/USDT", "BTC/USDT"))


def test_a_request_with_repeated_markets_is_refused_before_any_call(server, make_judge):
    with pytest.raises(ValueError):
        make_judge().rank_many([order_of(("BTC/USDT", "BTC/USDT"))], model=MODEL)
    assert server.calls == 0
