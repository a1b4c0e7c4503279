"""`marketrank.track_evaluate` (Celery beat, every TRACK_EVAL_INTERVAL_S, on its own queue
`marketrank.track` so a pass never delays a step nor the watchdog): scores the pick records whose
horizons have closed and prunes those past their retention (analysis/track/live_evaluate.py)."""

import logging
import time

from analysis.track.live_evaluate import evaluate_due
from analysis.track.record_store import RecordStore
from tasks.celery_app import TRACK_EVALUATE_TASK, app
from tasks.runtime import get_runtime

logger = logging.getLogger(__name__)


@app.task(name=TRACK_EVALUATE_TASK)
def track_evaluate() -> dict[str, int]:
    rt = get_runtime()
    s = rt.settings
    store = RecordStore(rt.redis, rt.keys, retention_days=s.track_retention_days)
    counts = evaluate_due(store, s.track_horizons, time.time(), retry_s=s.track_eval_interval_s)
    if counts.scored or counts.pruned:
        logger.info("track pass: %s", counts.as_dict())
    return counts.as_dict()
