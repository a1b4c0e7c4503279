"""INIT and RANKING: each task runs one step under the protocol and enqueues the next."""

import logging
import time

import redis
from kombu.exceptions import OperationalError

from analysis.engine.step_runner import run_step, storage_full
from tasks.celery_app import app
from tasks.dispatcher import INIT_TASK, RANK_STEP_TASK, CeleryDispatcher
from tasks.runtime import get_runtime

logger = logging.getLogger(__name__)
_dispatcher = CeleryDispatcher(app)


def _step(task, analysis_id: str, chain: str, seq: int) -> dict:
    rt = get_runtime()
    report = run_step(rt, analysis_id, chain, seq, worker=task.request.hostname or "")
    if report.continues:
        try:
            _dispatcher.enqueue_step(analysis_id, chain, seq + 1)
        except redis.OutOfMemoryError:  # the broker shares Redis: the next step has no room
            report = storage_full(rt, analysis_id, chain, seq + 1, now=time.time())
        except OperationalError as exc:  # no broker (e.g. Sentinel promoting a replica)
            logger.warning(
                "[%s chain=%s seq=%s] committed, but step %s could not be enqueued "
                "(%s): the watchdog re-enqueues it",
                analysis_id,
                chain[:8],
                seq,
                seq + 1,
                exc,
            )
    # The task-succeeded event carries this result, so Flower shows each step's progress.
    return {"decision": report.decision, "progress": report.progress, "confidence": report.confidence}


@app.task(name=INIT_TASK, bind=True)
def init_analysis(self, analysis_id: str, chain: str, seq: int = 0) -> dict:
    """INIT (seq 0): resolve markets, snapshot candles, set up the strategy."""
    return _step(self, analysis_id, chain, seq)


@app.task(name=RANK_STEP_TASK, bind=True)
def rank_step(self, analysis_id: str, chain: str, seq: int) -> dict:
    """RANKING step `seq`: one bounded piece of ranking work."""
    return _step(self, analysis_id, chain, seq)
