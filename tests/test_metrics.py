"""Prometheus metrics (issue #23, item 4): the real listener (`python -m listener`) serves
/metrics for the bearer METRICS_TOKEN only, to an allowed Host; scraped during a run on the real
Celery worker (a prefork pool of two processes), the counters match the run's own counts: the
steps its analyses committed and the calls the LLM server answered."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from analysis.config_factory import RankingConfigFactory
from tests.conftest import wait_until
from tests.helpers import noop_config, wait_for_status
from tests.servers import ROOT, free_port
from tests.test_export import get, running_listener
from tests.test_llm_strategy import MARKETS, STRENGTHS

pytestmark = pytest.mark.usefixtures("worker")
TOKEN = "metrics-token-for-tests"
WORKER_PROCESSES = 2  # the session worker's pool (tests/conftest.py)


@pytest.fixture(scope="module")
def metrics_port():
    port = free_port()
    with running_listener(port, "/metrics", METRICS_PORT=str(port), METRICS_TOKEN=TOKEN, EXPORT_PORT=""):
        yield port


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """Every sample: (name, sorted labels) -> value."""
    status, headers, body = get(port, "/metrics", token=TOKEN)
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def committed(service, ids) -> int:
    return sum(len(service.store.history(i)) for i in ids)


def test_scraped_during_a_run_the_counters_match_the_runs_own_counts(
    metrics_port, service, runtime, actor, llm_server
):
    llm_server.reset()
    llm_server.set_strengths(STRENGTHS)
    try:
        before = scrape(metrics_port)
        llm = RankingConfigFactory(runtime.settings, runtime.provider, llm_configured=True)
        runs = [
            service.start(noop_config(150), actor),
            service.start(noop_config(150), actor),
            service.start(
                llm.create_ranking_config(
                    symbols=MARKETS, top_k=3, strategy="llm", prompt="metrics run", target=0.95
                ),
                actor,
            ),
        ]
        ids = [g.id for g in runs]
        wait_until(lambda: committed(service, ids) >= 20, message="the run under way")
        # Mid-run: the scrape falls between two readings of the analyses' own histories. A step's
        # counters go to Redis right after its commit, so each pool process of the session worker
        # may have one commit not counted yet; never one counted that did not commit.
        low = committed(service, ids)
        during = scrape(metrics_port)
        high = committed(service, ids)
        steps_during = (
            during[("marketrank_steps_committed_total", ())]
            - before[("marketrank_steps_committed_total", ())]
        )
        assert low - WORKER_PROCESSES <= steps_during <= high
        assert during[("marketrank_analyses", (("status", "running"),))] >= 1

        done = [wait_for_status(service, i, actor, ["COMPLETED"], timeout=120) for i in ids]
        after = {}

        def grew(name, labels=()):
            return after.get((name, labels), 0) - before.get((name, labels), 0)

        def counted_up() -> bool:  # the last commits' counters follow them by one round trip
            after.clear()
            after.update(scrape(metrics_port))
            return grew("marketrank_steps_committed_total") >= committed(service, ids)

        wait_until(counted_up, timeout=10, message="the last commits to be counted")
        assert (
            grew("marketrank_steps_committed_total")
            == committed(service, ids)
            == sum(g.seq + 1 for g in done)
        )
        assert grew("marketrank_step_duration_seconds_count") == committed(service, ids)
        assert grew("marketrank_step_duration_seconds_bucket", (("le", "+Inf"),)) == committed(service, ids)
        assert grew("marketrank_llm_calls_total") == llm_server.calls == done[2].spend["calls"] > 0
        assert grew("marketrank_llm_tokens_total", (("kind", "prompt"),)) == done[2].spend["prompt_tokens"]
        assert ("marketrank_queue_depth", (("queue", "marketrank"), ("state", "queued"))) in after
        assert ("marketrank_queue_oldest_age_seconds", ()) in after
    finally:
        llm_server.set_strengths({})


@pytest.mark.parametrize(
    "token, host, extra, status",
    [
        (None, None, {}, 401),
        ("wrong", None, {}, 401),
        (TOKEN + "x", None, {}, 401),
        (TOKEN, "attacker.example:{port}", {}, 403),
        (TOKEN, None, {"Origin": "http://attacker.example"}, 403),
    ],
    ids=["no token", "a wrong token", "a longer token", "a foreign Host", "a web page"],
)
def test_metrics_are_refused_without_the_token_or_from_another_host(metrics_port, token, host, extra, status):
    got, headers, body = get(
        metrics_port,
        "/metrics",
        token=token,
        host=host.format(port=metrics_port) if host else None,
        extra=extra,
    )
    assert got == status and b"marketrank_" not in body
    assert body.count(b"\n") == 1 and "access-control-allow-origin" not in headers


def test_the_dashboard_and_the_operations_guide_name_exactly_the_metrics_served(service):
    """docs/grafana-marketrank.json queries only metrics that exist, and all of them; every one is
    listed in docs/operations.md."""
    import json
    import re

    from tasks.metrics import exposition
    from tasks.ops import default_ops

    served = {
        family.name for family in text_string_to_metric_families(exposition(service, default_ops()).decode())
    }
    dashboard = json.loads((ROOT / "docs" / "grafana-marketrank.json").read_text())
    queried = {
        re.sub(r"_(total|bucket|sum|count)$", "", name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"marketrank_\w+", target["expr"])
    }
    assert queried == served
    guide = (ROOT / "docs" / "operations.md").read_text()
    listed = {re.sub(r"_total$", "", name) for name in re.findall(r"^\| `(marketrank_\w+)`", guide, re.M)}
    assert listed == served


def test_each_step_adds_to_one_bucket_and_the_exposition_makes_them_cumulative():
    """A step is four HINCRBYs whatever the number of buckets; Prometheus still reads cumulative
    buckets (a step of 5 ms is in every bucket, one of 100 s only in +Inf)."""
    from collections import Counter

    from analysis.metrics import cumulative_buckets, step_increments

    counters: Counter = Counter()
    for duration in (0.005, 0.3, 0.3, 100.0):
        fields = step_increments("ok", duration)
        assert len(fields) <= 4
        counters.update(fields)
    buckets = dict(cumulative_buckets(counters))
    assert (buckets["0.01"], buckets["0.25"], buckets["0.5"], buckets["60"]) == (1, 1, 3, 3)
    assert counters["step_seconds_count"] == 4 and counters["step_seconds_sum_ms"] == 100_605
