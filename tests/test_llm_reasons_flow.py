"""The reasons call as the final step of an llm ranking (issue 22), every step run in this
process against the local OpenAI-compatible server: counted in spend, shown beside the facts,
asked once whatever the deliveries, skippable (LLM_REASONS=false), and a judge that gives no
reasons leaves the ranking complete and says why."""

import json

import pytest

from analysis.config_factory import RankingConfigFactory
from analysis.engine.runtime import Runtime
from analysis.engine.step_runner import run_step
from analysis.explain import why_lines
from analysis.models import Status
from analysis.service import AnalysisService
from analysis.settings import Settings
from tests.helpers import assert_history_is_one_clean_chain
from tests.openai_server import StrengthJudge, reasons_enum

MARKETS = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "DOGE/USDT", "ADA/USDT"]
STRENGTHS = {symbol: float(len(MARKETS) - i) for i, symbol in enumerate(MARKETS)}


@pytest.fixture
def judge_server(llm_server):
    llm_server.reset()
    llm_server.set_strengths(STRENGTHS)
    yield llm_server
    llm_server.reset()
    llm_server.set_strengths({})


def local(judge_server, queue, **update):
    settings = Settings(
        openai_base_url=judge_server.base_url,
        openai_api_key="sk-test",
        openai_model="judge-small",
        openai_backoff_base_s=0.01,
        openai_backoff_max_s=0.02,
        **update,
    )
    rt = Runtime(settings)
    return rt, AnalysisService(rt.store, queue)


def rank(rt, service, queue, actor, case):
    """The prompt names the case, so no answer comes from the response cache of another test."""
    factory = RankingConfigFactory(rt.settings, rt.provider, llm_configured=True)
    config = factory.create_ranking_config(
        symbols=MARKETS, top_k=3, strategy="llm", target=0.9, prompt=f"strongest trend, {case}"
    )
    gist = service.start(config, actor)
    queue.drain(rt)
    done = service.get(gist.id, actor)
    assert done.status == Status.COMPLETED, done.reason
    return done


def reasons_requests(server):
    return [r for r in server.requests if reasons_enum(r.response_format) is not None]


def test_the_final_step_asks_once_and_its_call_is_counted(judge_server, queue, actor):
    rt, service = local(judge_server, queue)
    done = rank(rt, service, queue, actor, "reasons once")
    top = [item.symbol for item in done.result]
    assert set(top) == set(MARKETS[:3])
    (asked,) = reasons_requests(judge_server)
    assert asked is judge_server.requests[-1]  # after the ranking, and only then
    assert done.state["reasons"] == {s: f"strength {STRENGTHS[s]:g}" for s in top}
    assert done.spend["calls"] == len(done.state["log"]) + 1 == judge_server.calls
    assert done.spend["completion_tokens"] == sum(r.usage["completion_tokens"] for r in judge_server.requests)
    # Shown beside the facts from the candles.
    document = service.explain(done.id, actor)
    assert [m["reason"] for m in document["markets"]] == [f"strength {STRENGTHS[s]:g}" for s in top]
    assert {"rsi_14", "return_24", "quote_volume_24"} <= set(document["markets"][0]["facts"])
    assert why_lines(done)[0] == f"1. {top[0]} {done.result[0].score:+.3f}: strength {STRENGTHS[top[0]]:g}"
    # A duplicate delivery of the final step is a no-op: no second call.
    history = service.store.history(done.id)
    assert_history_is_one_clean_chain(history, done.seq)
    again = run_step(rt, done.id, history[-1].chain, done.seq)
    assert again.decision.startswith("skip:") and judge_server.calls == done.spend["calls"]


def test_llm_reasons_false_skips_the_call(judge_server, queue, actor):
    rt, service = local(judge_server, queue, llm_reasons=False)
    done = rank(rt, service, queue, actor, "reasons off")
    assert reasons_requests(judge_server) == []
    assert done.spend["calls"] == len(done.state["log"]) == judge_server.calls
    assert all(m["reason"] is None for m in service.explain(done.id, actor)["markets"])


def test_a_judge_that_gives_no_reasons_leaves_the_ranking_complete_and_says_why(judge_server, queue, actor):
    ranks = StrengthJudge(STRENGTHS)
    judge_server.set_policy(
        lambda req: json.dumps({"reasons": []}) if reasons_enum(req.response_format) else ranks(req)
    )
    rt, service = local(judge_server, queue, openai_max_retries=2)
    done = rank(rt, service, queue, actor, "no reasons")
    assert len(reasons_requests(judge_server)) == 3  # asked, retried twice, all paid for
    assert done.spend["calls"] == len(done.state["log"]) + 3 == judge_server.calls
    assert done.state["reasons"] == {}
    assert "left out 3 of the 3 markets" in done.state["reasons_error"]
    assert any(
        line.startswith("The judge gave no reasons: The LLM kept giving unusable answers")
        for line in why_lines(done)
    )
