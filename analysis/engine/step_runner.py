"""Runs one step of an analysis under the step protocol: begin, work, commit (docs/architecture.md).

`run_step` is what the Celery tasks call; it never raises for a problem of the analysis itself:
such a step ends softly (paused or failed with a reason the user sees) and the answer says so.
"""

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import redis

from analysis.db.scripts.steps import CommitStep, StepStop, StorageFull
from analysis.engine.lease_keeper import lease_keeper
from analysis.engine.runtime import Runtime
from analysis.engine.snapshot import snapshot_refs
from analysis.engine.step_stats import record_step
from analysis.engine.store_steps import BegunStep
from analysis.errors import AnalysisError, DataUnavailable, InvalidConfig, JudgeUnavailable
from analysis.markets.base import TIMEFRAMES
from analysis.markets.candle_blocks import BLOCK_CANDLES
from analysis.markets.indicators import WARMUP_CANDLES
from analysis.markets.quality import QualityBounds, assess
from analysis.markets.registry import provider_from_spec
from analysis.models import REFINE_MODEL, HistoryEntry, RankingConfig, StepOutcome
from analysis.ranking.llm_judge import JudgeStats, ListRequest, ListVerdict, PairRequest, Verdict
from analysis.ranking.strategies import get_strategy
from analysis.ranking.strategies.base import Judge, StepInput
from analysis.track.live_records import write_completion_record
from analysis.track.record_store import RecordStore

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class StepReport:
    """What happened to one delivery of a step: `decision` is the commit's answer (continue,
    completed, paused...), paused/failed for a step that ended softly, or skip:<why> when BEGIN_STEP
    made the delivery a no-op; `continues` says whether the next step is to be enqueued."""

    decision: str
    progress: float = 0.0
    confidence: float = 0.0
    continues: bool = False


def with_retries(
    call: Callable[[], T], *, retries: int, backoff_s: float, sleep: Callable[[float], None] = time.sleep
) -> T:
    """Call, retrying DataUnavailable `retries` times with exponential backoff (not one that
    says it was retried already: `retry = False`)."""
    for attempt in range(retries + 1):
        try:
            return call()
        except DataUnavailable as exc:
            if attempt == retries or not getattr(exc, "retry", True):
                raise
            sleep(backoff_s * 2**attempt)
    raise AssertionError("unreachable")


def initialize(rt: Runtime, analysis_id: str, config: RankingConfig, attempt: str) -> StepOutcome:
    """INIT: read every market's candles (none closing after `config.candles_to`, so it ranks
    what the trader was shown whenever it runs), record their data quality and leave out the
    markets whose data cannot carry the indicators (analysis/markets/quality.py), snapshot the
    rest as shared candle blocks (only while `attempt` holds the lease), set up the strategy."""
    provider = provider_from_spec(config.data_source)
    settings = rt.settings
    step_s = TIMEFRAMES[config.timeframe]
    # The rest of the window's first block too, so the snapshot's blocks are whole ones (the
    # same blocks as the live-data cache and other analyses: no second copy), and the candles
    # that closed since the config was made, which are cut off.
    late = max(0, int(time.time() - config.candles_to) // step_s) if config.candles_to else 0
    frames = {}
    for symbol in config.markets:
        frame = with_retries(
            lambda: provider.candles(symbol, config.timeframe, config.window + BLOCK_CANDLES + late),
            retries=settings.step_retries,
            backoff_s=settings.step_retry_backoff_s,
        )
        if config.candles_to:
            frame = frame[frame.index.as_unit("s").asi8 + step_s <= config.candles_to]
        frames[symbol] = frame
    quality = assess(
        {s: f.iloc[-config.window :] for s, f in frames.items()},
        config.timeframe,
        step_s,
        config.candles_to,
        quality_bounds(settings, config),
    )
    kept = [s for s in config.markets if s not in quality["left_out"]]
    if quality["left_out"]:
        logger.info(
            "[%s] INIT left out %s",
            analysis_id,
            "; ".join(f"{s}: {why}" for s, why in quality["left_out"].items()),
        )
    if len(kept) < max(2, config.top_k):
        raise InvalidConfig(
            f"only {len(kept)} of {len(config.markets)} markets have data to rank "
            f"(top {config.top_k} needs {max(2, config.top_k)}): "
            + "; ".join(f"{s} {why}" for s, why in list(quality["left_out"].items())[:3])
        )
    refs = {
        symbol: snapshot_refs(rt.snapshots.blocks, frames[symbol], config.window, step_s, settings.gist_ttl_s)
        for symbol in kept
    }
    if not rt.store.save_snapshot(analysis_id, attempt, refs):
        # Fenced out while reading (lease ran out and the step was redone, or force-resume): the
        # snapshot of the attempt that holds the lease stays, and this attempt's commit will fail.
        logger.warning("[%s] INIT attempt %s lost its lease: its snapshot is not saved", analysis_id, attempt)
    state = dict(get_strategy(config.strategy).initial_state(config, kept))
    state["data_quality"] = quality
    return StepOutcome(state=state, progress=0.0, confidence=0.0, done=False, result=[])


def quality_bounds(settings, config: RankingConfig) -> QualityBounds:
    """The data-quality bounds of an analysis (analysis/markets/quality.py)."""
    return QualityBounds(
        needed=WARMUP_CANDLES + config.views,
        needed_why=(
            f"{WARMUP_CANDLES} of warm-up, after which ta's RSI, ATR and ADX agree with "
            f"TA-Lib, plus the {config.views} moments the confidence is measured at"
        ),
        max_thin=settings.max_thin_share,
        stale_candles=settings.data_stale_candles,
        jump_factor=settings.data_jump_factor,
    )


def resolve_model(wanted: str, settings) -> str:
    """The gist names the model by role, so the workers' settings decide: '' is OPENAI_MODEL,
    REFINE_MODEL is OPENAI_REFINE_MODEL (or OPENAI_MODEL when unset)."""
    if wanted == REFINE_MODEL:
        return settings.openai_refine_model or settings.openai_model
    return wanted or settings.openai_model


class SpendRecordingJudge:
    """The LLM judge, with what each batch spent added to the gist as soon as it is known, so
    calls and retries of a step that then fails or dies still show in the analysis's spend."""

    def __init__(self, judge: Judge, record: Callable[[dict[str, int]], object]):
        self._judge, self._record = judge, record

    def compare_many(self, requests: list[PairRequest], *, model: str) -> tuple[list[Verdict], JudgeStats]:
        return self._recorded(self._judge.compare_many, requests, model)

    def rank_many(self, requests: list[ListRequest], *, model: str) -> tuple[list[ListVerdict], JudgeStats]:
        return self._recorded(self._judge.rank_many, requests, model)

    def ask_structured(
        self,
        label: str,
        parse: Any,
        encode: Any,
        messages: list[dict[str, str]],
        response_format: dict[str, Any],
        *,
        model: str,
    ) -> tuple[Any, JudgeStats]:
        ask = partial(self._judge.ask_structured, label, parse, encode, messages)
        return self._recorded(ask, response_format, model)

    def _recorded(
        self, ask: Callable[..., tuple[Any, JudgeStats]], requests: Any, model: str
    ) -> tuple[Any, JudgeStats]:
        try:
            verdicts, stats = ask(requests, model=model)
        except JudgeUnavailable as exc:
            spent = getattr(exc, "stats", None)  # what a judge that gave up had spent
            if spent is not None:
                self._record(spent.as_dict())
            raise
        self._record(stats.as_dict())
        return verdicts, stats


def work(rt: Runtime, analysis_id: str, seq: int, begun: BegunStep, attempt: str = "") -> StepOutcome:
    if seq == 0:
        return initialize(rt, analysis_id, begun.config, attempt)
    strategy = get_strategy(begun.config.strategy)
    judge = None
    if begun.config.strategy == "llm":
        judge = SpendRecordingJudge(rt.judge(), lambda spent: rt.store.add_spend(analysis_id, spent))
    inp = StepInput(
        analysis_id=analysis_id,
        seq=seq,
        config=begun.config,
        state=begun.state,
        target=begun.target,
        model=resolve_model(begun.model, rt.settings),
        load_candles=lambda symbols: rt.snapshots.load(analysis_id, symbols),
        judge=judge,
        reasons=rt.settings.llm_reasons,
    )
    return strategy.step(inp)


def run_step(
    rt: Runtime,
    analysis_id: str,
    chain: str,
    seq: int,
    *,
    worker: str = "",
    clock: Callable[[], float] = time.time,
) -> StepReport:
    """Run step `seq` of the chain; answer the decision: continue, completed, paused, cancelled,
    or `skip:<why>` when the protocol made this delivery a no-op (stale, duplicate, paused...)."""
    tag = f"[{analysis_id} chain={chain[:8]} seq={seq}]"
    try:
        return _run_step(rt, tag, analysis_id, chain, seq, worker, clock)
    except redis.OutOfMemoryError:
        return storage_full(rt, analysis_id, chain, seq, now=clock())


def storage_full(rt: Runtime, analysis_id: str, chain: str, seq: int, *, now: float) -> StepReport:
    """Redis refused a write of this step (its memory limit): the analysis is paused with the
    reason 'storage full' and admins are told; Resume carries on once there is room."""
    answer = rt.store.storage_full(analysis_id, chain, seq, now=now)
    paused = answer.code == StorageFull.OK
    logger.error(
        "[%s chain=%s seq=%s] Redis is at its memory limit: %s",
        analysis_id,
        chain[:8],
        seq,
        "paused (storage full)" if paused else answer.code.value,
    )
    return StepReport("paused" if paused else f"skip:{answer.code.value}")


def _run_step(
    rt: Runtime, tag: str, analysis_id: str, chain: str, seq: int, worker: str, clock: Callable[[], float]
) -> StepReport:
    attempt = uuid.uuid4().hex[:12]
    started = clock()
    answer, begun = rt.store.begin_step(analysis_id, chain, seq, attempt, now=started)
    if begun is None:
        logger.info("%s no-op: %s %s", tag, answer.code.value, " ".join(answer.values))
        return StepReport(f"skip:{answer.code.value}")
    keeper = lease_keeper(rt.settings.heartbeat_ms / 1000)
    with keeper.hold(analysis_id, attempt, lambda: rt.store.heartbeat(analysis_id, attempt)):
        try:
            outcome = work(rt, analysis_id, seq, begun, attempt)
        except redis.OutOfMemoryError:
            raise  # storage full: run_step pauses the analysis
        except AnalysisError as exc:
            final = seq == 0 and isinstance(exc, InvalidConfig)
            _count(rt, FAILURE_KIND.get(type(exc), "config" if final else "internal"), clock(), started)
            return _stop(rt, tag, analysis_id, begun, chain, attempt, seq, str(exc), final, clock)
        except Exception as exc:  # a bug: keep the analysis, tell the admins
            logger.exception("%s step crashed", tag)
            _count(rt, "internal", clock(), started)
            reason = f"internal error in step {seq} ({type(exc).__name__}); an admin can resume it"
            return _stop(rt, tag, analysis_id, begun, chain, attempt, seq, reason, False, clock)
    entry = HistoryEntry(
        seq=seq, chain=chain, attempt=attempt, worker=worker, started_at=started, finished_at=clock()
    )
    commit = rt.store.commit_step(
        analysis_id,
        begun.owner,
        chain,
        seq,
        attempt,
        outcome,
        entry,
        target_used=begun.target,
        now=entry.finished_at,
    )
    logger.info(
        "%s commit: %s (progress %.2f, confidence %.3f, %.0f ms)",
        tag,
        commit.code.value,
        outcome.progress,
        outcome.confidence,
        1000 * (entry.finished_at - started),
    )
    if commit.code == CommitStep.COMPLETED:
        record_pick(rt, tag, analysis_id, seq, begun, outcome, now=entry.finished_at)
    committed = commit.code in (CommitStep.CONTINUE, CommitStep.COMPLETED, CommitStep.PAUSED)
    _count(rt, "ok" if committed else "lost", entry.finished_at, started)
    return StepReport(
        commit.code.value, outcome.progress, outcome.confidence, continues=commit.code == CommitStep.CONTINUE
    )


def record_pick(
    rt: Runtime, tag: str, analysis_id: str, seq: int, begun: BegunStep, outcome: StepOutcome, *, now: float
) -> None:
    """The completion's pick record (analysis/track/live_records.py). Only the attempt whose
    commit answered `completed` gets here, once per completion; the record is keyed by the
    committed seq, so a retried write changes nothing. A failure is logged, never the step's."""
    config, settings = begun.config, rt.settings
    try:
        gist = rt.store.load(analysis_id)
        in_snapshot = set(config.markets)
        write_completion_record(
            RecordStore(rt.redis, rt.keys, retention_days=settings.track_retention_days),
            analysis_id,
            seq,
            config,
            outcome,
            model=resolve_model(begun.model, settings),
            schedule=gist.schedule if gist else "",
            horizons=settings.track_horizons,
            load=lambda symbols: rt.snapshots.load(analysis_id, [s for s in symbols if s in in_snapshot]),
            now_s=now,
        )
    except Exception:
        logger.exception("%s the pick record could not be written", tag)


FAILURE_KIND = {JudgeUnavailable: "judge", DataUnavailable: "data", InvalidConfig: "config"}


def _count(rt: Runtime, outcome: str, now: float, started: float) -> None:
    """Health's step counters and the Prometheus ones; a Redis blip here must not fail the step."""
    try:
        duration_s = max(0.0, now - started) if rt.settings.metrics_step_counters else None
        record_step(rt.redis, rt.keys, outcome, now=now, duration_s=duration_s)
    except Exception:
        logger.warning("could not count a step outcome (%s)", outcome, exc_info=True)


def _stop(
    rt: Runtime,
    tag: str,
    analysis_id: str,
    begun: BegunStep,
    chain: str,
    attempt: str,
    seq: int,
    reason: str,
    final: bool,
    clock: Callable[[], float],
) -> StepReport:
    status = "FAILED" if final else "PAUSED"
    logger.warning("%s %s: %s", tag, status.lower(), reason)
    now = clock()
    rt.store.record_failure(analysis_id, seq, reason, now=now)
    answer = rt.store.stop_step(
        analysis_id, begun.owner, chain, attempt, status=status, reason=reason, now=now
    )
    return StepReport(status.lower() if answer.code == StepStop.OK else answer.code.value)
