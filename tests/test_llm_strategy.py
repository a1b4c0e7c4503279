"""The `llm` strategy end to end: real worker, real openai client, a local OpenAI-compatible
server whose judge follows a known strength table (so the true ranking is known)."""

import pytest

from analysis.config_factory import RankingConfigFactory
from analysis.engine.runtime import Runtime
from analysis.engine.step_runner import work
from analysis.models import Status
from analysis.ranking import plackett_luce
from analysis.settings import Settings
from tests.conftest import wait_until
from tests.helpers import assert_history_is_one_clean_chain, ranking, wait_for_status

pytestmark = pytest.mark.usefixtures("worker")

MARKETS = [
    "BTC/USDT",
    "ETH/USDT",
    "SOL/USDT",
    "XRP/USDT",
    "DOGE/USDT",
    "ADA/USDT",
    "TRX/USDT",
    "AVAX/USDT",
    "LINK/USDT",
    "DOT/USDT",
    "LTC/USDT",
    "NEAR/USDT",
]
STRENGTHS = {symbol: float(len(MARKETS) - i) for i, symbol in enumerate(MARKETS)}


@pytest.fixture
def judge_server(llm_server):
    llm_server.reset()
    llm_server.set_strengths(STRENGTHS)
    yield llm_server
    llm_server.clear_faults()
    llm_server.set_strengths({})  # the session's later tests rank other markets: know them all again


@pytest.fixture(params=[10, 2], ids=["listwise", "pairwise"])
def llm_factory(request, runtime):
    """Every test runs with listwise calls (LLM_LIST_SIZE 10, the default) and with pairs (2)."""
    settings = runtime.settings.model_copy(update={"llm_list_size": request.param})
    return RankingConfigFactory(settings, runtime.provider, llm_configured=True)


def models_in(log):
    return {e["model"] if isinstance(e, dict) else e[3] for e in log}


def first_batch(config) -> int:
    """How many calls the first comparing step sends."""
    if config.list_size > 2:
        return plackett_luce.calls_per_round(len(config.markets), config.list_size, config.batch_size)
    return config.batch_size


def llm_config(llm_factory, prompt: str, top_k: int = 3, target: float = 0.95):
    """A high target: with this noiseless judge the reported set should then be exactly right
    (at 0.8, one market in five may be wrong, and honestly so)."""
    return llm_factory.create_ranking_config(
        symbols=MARKETS, top_k=top_k, strategy="llm", prompt=prompt, target=target
    )


def comparison_log(service, analysis_id):
    return service.store.load(analysis_id).state["log"]


@pytest.mark.slow
def test_an_llm_analysis_finds_the_true_top_k_and_counts_what_it_paid(
    service, llm_factory, actor, judge_server
):
    gist = service.start(llm_config(llm_factory, "strongest trend, case 1"), actor)
    done = wait_for_status(service, gist.id, actor, ["COMPLETED"], timeout=120)
    # Confidence is about the set (expected precision@K), so the set is what must be right.
    assert {symbol for symbol, _ in ranking(done)} == set(MARKETS[:3])
    assert done.confidence >= 0.95 and not done.note
    # Every request the server saw is counted, once: the comparisons and the one reasons call
    # (the second parameter's reasons for the same top 3 and question come from the cache).
    assert done.spend["calls"] == judge_server.calls
    assert done.spend["calls"] + done.spend.get("cache_hits", 0) == len(done.state["log"]) + 1
    assert set(done.state["reasons"]) == set(MARKETS[:3])
    # The cost against all pairs is measured in `make bench-ranking` (30 markets); here the
    # judge is noiseless and the target 0.95, so only the budget bounds it.
    assert 0 < done.spend["calls"] <= done.state["budget"] + 1
    assert done.spend["prompt_tokens"] > 0 and done.spend.get("retries", 0) == 0
    assert models_in(done.state["log"]) == {"judge-small"}
    prompts = [r.messages[-1]["content"] for r in judge_server.requests]
    assert all("strongest trend, case 1" in p and "RSI(14)" in p for p in prompts)
    assert_history_is_one_clean_chain(service.store.history(gist.id), done.seq)


@pytest.mark.slow
def test_429_500_timeouts_and_malformed_answers_are_survived(service, llm_factory, actor, judge_server):
    judge_server.fail_next(2, status=429, retry_after=1)
    judge_server.fail_next(2, status=500)
    judge_server.malformed_next(1)
    judge_server.off_schema_next(1)
    judge_server.delay_next(1, 3.0)  # the workers' client times out after 2 s
    gist = service.start(llm_config(llm_factory, "faults, case 2"), actor)
    done = wait_for_status(service, gist.id, actor, ["COMPLETED"], timeout=120)
    assert {symbol for symbol, _ in ranking(done)} == set(MARKETS[:3])
    assert done.spend["retries"] >= 7
    assert done.spend["calls"] == judge_server.calls  # failed attempts are paid for too


@pytest.mark.slow
def test_a_judge_that_keeps_failing_pauses_with_a_reason_and_resume_loses_nothing(
    service, llm_factory, actor, judge_server
):
    config = llm_config(llm_factory, "outage, case 3")
    judge_server.fail_always(status=503, after=first_batch(config))  # the outage begins after one batch
    gist = service.start(config, actor)
    paused = wait_for_status(service, gist.id, actor, ["PAUSED", "COMPLETED"], timeout=60)
    assert paused.status == Status.PAUSED, "the judge outage should pause the analysis"
    assert "503" in paused.reason
    # The failed step committed nothing, but what its calls cost is in the gist.
    assert paused.spend["calls"] == judge_server.calls
    assert paused.spend["retries"] > 0 and paused.spend["failures"] > 0
    kept = comparison_log(service, gist.id)
    judge_server.clear_faults()
    assert service.resume(gist.id, actor).changed
    done = wait_for_status(service, gist.id, actor, ["COMPLETED"], timeout=120)
    assert done.state["log"][: len(kept)] == kept  # nothing lost
    assert {symbol for symbol, _ in ranking(done)} == set(MARKETS[:3])


def test_pause_and_resume_give_the_same_ranking_and_comparisons_as_an_uninterrupted_run(
    service, llm_factory, actor, judge_server
):
    config = llm_config(llm_factory, "pause equivalence, case 4")
    reference = wait_for_status(service, service.start(config, actor).id, actor, ["COMPLETED"], timeout=120)
    gist = service.start(config, actor)
    wait_until(lambda: service.get(gist.id, actor).seq >= 2, message="a comparing step")
    service.pause(gist.id, actor)
    wait_until(lambda: service.store.lease_holder(gist.id) is None, message="the step in flight")
    assert service.get(gist.id, actor).status in (Status.PAUSED, Status.COMPLETED)
    service.resume(gist.id, actor)
    done = wait_for_status(service, gist.id, actor, ["COMPLETED"], timeout=120)
    assert ranking(done) == ranking(reference)
    assert done.state["log"] == reference.state["log"]
    assert done.confidence == reference.confidence


def test_refine_switches_to_the_refine_model_and_continues_the_same_log(
    service, llm_factory, actor, judge_server
):
    config = llm_config(llm_factory, "refine, case 5").model_copy(update={"target_confidence": 0.6})
    done = wait_for_status(service, service.start(config, actor).id, actor, ["COMPLETED"], timeout=120)
    before = done.state["log"]
    for generation in range(done.refine_gen, done.refine_gen + 6):
        service.refine(done.id, actor, generation=generation)
        refined = wait_for_status(service, done.id, actor, ["COMPLETED"], timeout=120)
    assert refined.target == pytest.approx(0.9) and refined.model == "@refine"
    assert refined.state["log"][: len(before)] == before
    assert refined.confidence >= 0.9 or refined.note
    new_models = models_in(refined.state["log"][len(before) :])
    assert new_models <= {"judge-large"}


def test_a_replayed_step_does_not_pay_for_its_comparisons_twice(
    runtime, service, llm_factory, actor, judge_server
):
    """A step killed after the judge answered and redelivered: the retry is served from the
    response cache. Replayed here in this process, with the workers' judge settings."""
    gist = service.start(llm_config(llm_factory, "replay, case 6"), actor)
    wait_for_status(service, gist.id, actor, ["COMPLETED"], timeout=120)
    settings = Settings(
        openai_base_url=judge_server.base_url, openai_api_key="sk-test", openai_model="judge-small"
    )
    local = Runtime(settings)
    chain = service.store.chain(gist.id)
    # Replay step 2 (the first comparing step) from the state step 1 committed.
    from analysis.engine.store_steps import BegunStep

    begun_config = service.get(gist.id, actor).config
    state_after_summaries = _state_before_first_batch(service, gist.id)
    calls_before, spent_before = judge_server.calls, service.store.load(gist.id).spend
    outcome = work(
        local,
        gist.id,
        2,
        BegunStep(begun_config, state_after_summaries, 0.8, "judge-small", actor.user_id, []),
    )
    batch = first_batch(begun_config)
    assert len(outcome.state["log"]) == batch and judge_server.calls == calls_before
    spent = service.store.load(gist.id).spend
    assert spent["calls"] == spent_before["calls"]
    assert spent["cache_hits"] == spent_before.get("cache_hits", 0) + batch
    assert chain


def _state_before_first_batch(service, analysis_id):
    state = dict(service.store.load(analysis_id).state)
    state.update(log=[], budget=state["budget"])
    state.pop("estimate", None)
    return state
