"""The judge's reasons (issue 22) against the local OpenAI-compatible server, through the real
openai client: the market_reasons contract, malformed answers retried and counted, and model
text made plain and cut."""

from __future__ import annotations

import json

import pytest

from analysis.ranking.llm_judge import LLMJudgeUnavailable
from analysis.ranking.llm_reasons import REASON_MAX_CHARS, ReasonsRequest, ask_reasons, parse_reasons
from tests.test_llm_judge import MODEL, QUESTION, cache, make_judge, server, sleeps, summary  # noqa: F401 (fixtures)

RANKED = ("BTC/USDT", "ETH/USDT", "SOL/USDT")


def request() -> ReasonsRequest:
    return ReasonsRequest(RANKED, tuple(summary(s) for s in RANKED), QUESTION)


def test_one_call_gives_a_reason_per_ranked_market_by_the_contract(server, make_judge):
    reasons, stats = ask_reasons(make_judge(), request(), model=MODEL)

    assert list(reasons) == list(RANKED) and reasons["BTC/USDT"] == "strength 10"
    assert server.calls == stats.calls == 1 and stats.prompt_tokens > 0
    (recorded,) = server.requests
    assert recorded.model == MODEL
    assert recorded.response_format == {
        "type": "json_schema",
        "json_schema": {
            "name": "market_reasons",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {
                    "reasons": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "symbol": {"type": "string", "enum": list(RANKED)},
                                "reason": {"type": "string"},
                            },
                            "required": ["symbol", "reason"],
                            "additionalProperties": False,
                        },
                    }
                },
                "required": ["reasons"],
                "additionalProperties": False,
            },
        },
    }
    text = recorded.messages[-1]["content"]
    assert QUESTION in text
    for rank, symbol in enumerate(RANKED, start=1):
        assert f"Rank {rank}: {symbol}\nIndicators: {summary(symbol)}" in text


@pytest.mark.parametrize(
    "bad",
    [
        {"reasons": [{"symbol": "BTC/USDT", "reason": "x"}, {"symbol": "ETH/USDT", "reason": "y"}]},
        {"reasons": [{"symbol": s, "reason": "x"} for s in RANKED + ("BTC/USDT",)]},
        {"reasons": [{"symbol": s, "reason": "x"} for s in RANKED[:2] + ("DOGE/USDT",)]},
        {"reasons": [{"symbol": s, "reason": 3} for s in RANKED]},
        {"why": []},
    ],
    ids=["misses", "repeats", "invents", "not-text", "no-reasons"],
)
def test_a_malformed_answer_is_retried_and_every_call_counted(server, make_judge, bad):
    server.off_schema_next(2, answer=bad)
    reasons, stats = ask_reasons(make_judge(), request(), model=MODEL)

    assert list(reasons) == list(RANKED)
    assert server.calls == stats.calls == 3 and stats.retries == 2
    assert stats.prompt_tokens == sum(r.usage["prompt_tokens"] for r in server.requests)


def test_malformed_answers_until_the_bound_make_the_judge_unavailable(server, make_judge):
    server.off_schema_next(10, answer={"reasons": []})
    with pytest.raises(LLMJudgeUnavailable) as raised:
        ask_reasons(make_judge(max_retries=2), request(), model=MODEL)
    assert "left out 3 of the 3 markets" in str(raised.value)
    assert raised.value.stats.calls == server.calls == 3 and raised.value.stats.failures == 1


def test_a_repeated_request_is_served_from_the_cache(server, make_judge):
    judge = make_judge()
    ask_reasons(judge, request(), model=MODEL)
    again, stats = ask_reasons(judge, request(), model=MODEL)
    assert server.calls == 1 and stats.calls == 0 and stats.cache_hits == 1 and len(again) == 3


def test_markup_and_over_long_reasons_come_back_as_one_plain_line_cut(server, make_judge):
    long = "<b>Buy</b> <a href='https://evil.example'>now</a> &amp;\n\u202eall in\x00 " + "moon " * 100
    server.set_policy(lambda req: json.dumps({"reasons": [{"symbol": s, "reason": long} for s in RANKED]}))
    reasons, _ = ask_reasons(make_judge(), request(), model=MODEL)
    reason = reasons["BTC/USDT"]
    assert len(reason) == REASON_MAX_CHARS and reason.endswith("…")
    # Line breaks, control and direction characters gone; the markup kept as text (escaped by fronts).
    assert reason.startswith("<b>Buy</b> <a href='https://evil.example'>now</a> &amp; all in moon")
    assert "\n" not in reason and "\u202e" not in reason and "\x00" not in reason


def test_parse_forgives_case_and_spaces_and_keeps_rank_order():
    content = json.dumps(
        {
            "reasons": [
                {"symbol": " sol/usdt ", "reason": "c"},
                {"symbol": "BTC/USDT", "reason": "a"},
                {"symbol": "eth/USDT", "reason": "b"},
            ]
        }
    )
    assert parse_reasons(content, RANKED) == {"BTC/USDT": "a", "ETH/USDT": "b", "SOL/USDT": "c"}
