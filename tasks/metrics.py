"""Prometheus exposition: the counters every process keeps in Redis (analysis/metrics.py), the
live analyses by status and the broker's queue, read at scrape time by a custom collector.

Why Redis and not prometheus_client's multiprocess mode: the workers are prefork pools on several
hosts. Multiprocess mode sums the processes of one host only (through files in a shared
directory, cleaned on each start) and needs one scrape target per host; counters in Redis are one
HINCRBY per event, already atomic across processes and hosts, survive a worker restart, and any
one scrape of any host gives the whole deployment's figures. docs/operations.md lists every metric.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from analysis.metrics import cumulative_buckets, read_counters
from analysis.models import Status
from analysis.service import AnalysisService
from tasks.ops import BrokerOps

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LLM_COUNTERS = {  # field after 'llm:' -> (metric, help)
    "calls": ("marketrank_llm_calls", "LLM judge calls (requests sent)"),
    "retries": ("marketrank_llm_retries", "LLM judge calls repeated after a fault"),
    "cache_hits": ("marketrank_llm_cache_hits", "comparisons answered from the LLM answer cache"),
}
PLAIN_COUNTERS = {
    "candle_fetches": ("marketrank_candle_fetches", "candle series fetched from the exchange"),
    "candle_cache_hits": ("marketrank_candle_cache_hits", "candle series served from the Redis cache"),
    "alerts_sent": ("marketrank_alerts_sent", "alerts sent to admins"),
    "watchdog_reenqueues": ("marketrank_watchdog_reenqueues", "lost steps the watchdog re-enqueued"),
}


class MarketrankCollector(Collector):
    def __init__(self, service: AnalysisService, ops: BrokerOps | None):
        self.service, self.ops = service, ops

    def collect(self) -> Iterator:
        store = self.service.store
        counters = read_counters(store.redis, store.keys.metrics())
        yield from step_metrics(counters)
        yield from llm_metrics(counters)
        for field, (name, text) in PLAIN_COUNTERS.items():
            yield CounterMetricFamily(name, text, value=counters.get(field, 0))
        analyses = GaugeMetricFamily("marketrank_analyses", "live analyses by status", labels=["status"])
        overview = self.service.overview()
        for status in Status:
            if not status.is_final:
                analyses.add_metric([status.value.lower()], overview.get(status.value, 0))
        yield analyses
        if self.ops is not None:
            yield from queue_metrics(self.ops)


def step_metrics(counters: dict[str, int]) -> Iterator:
    yield CounterMetricFamily(
        "marketrank_steps_committed", "steps committed", value=counters.get("steps_committed", 0)
    )
    failed = CounterMetricFamily(
        "marketrank_steps_failed",
        "steps that did not commit, by why (lost, judge, data, config, internal)",
        labels=["reason"],
    )
    for field, value in sorted(counters.items()):
        if field.startswith("steps_failed:"):
            failed.add_metric([field.split(":", 1)[1]], value)
    yield failed
    count = counters.get("step_seconds_count", 0)
    buckets = cumulative_buckets(counters)
    yield HistogramMetricFamily(
        "marketrank_step_duration_seconds",
        "time from a step's begin to its commit (or its failure)",
        buckets=[*buckets, ("+Inf", count)],
        sum_value=counters.get("step_seconds_sum_ms", 0) / 1000,
    )


def llm_metrics(counters: dict[str, int]) -> Iterator:
    for field, (name, text) in LLM_COUNTERS.items():
        yield CounterMetricFamily(name, text, value=counters.get(f"llm:{field}", 0))
    tokens = CounterMetricFamily("marketrank_llm_tokens", "LLM tokens spent, by kind", labels=["kind"])
    tokens.add_metric(["prompt"], counters.get("llm:prompt_tokens", 0))
    tokens.add_metric(["completion"], counters.get("llm:completion_tokens", 0))
    yield tokens


def queue_metrics(ops: BrokerOps) -> Iterator:
    depth = GaugeMetricFamily(
        "marketrank_queue_depth",
        "messages in a queue: waiting, or delivered and not yet acknowledged",
        labels=["queue", "state"],
    )
    for queue, depths in ops.queue_depths().items():
        depth.add_metric([queue, "queued"], depths.queued)
        if depths.unacked:
            depth.add_metric([queue, "unacked"], depths.unacked)
    yield depth
    yield GaugeMetricFamily(
        "marketrank_queue_oldest_age_seconds",
        "how long the oldest waiting step has waited (0 when none waits)",
        value=ops.oldest_age_s() or 0.0,
    )


def exposition(service: AnalysisService, ops: BrokerOps | None) -> bytes:
    """The metrics in Prometheus's text format, read now."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MarketrankCollector(service, ops))
    return generate_latest(registry)
