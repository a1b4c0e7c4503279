"""`marketrank.scheduled_run`: what beat sends when a schedule is due. It starts one ordinary
analysis for the schedule's owner (INIT shows `schedule=<id>` in Flower), or skips with a note."""

import logging

from analysis.engine.runtime import Runtime
from analysis.schedules.firing import FireResult
from analysis.schedules.service import ScheduleService
from analysis.services import build_services
from tasks.celery_app import app
from tasks.dispatcher import CeleryDispatcher
from tasks.runtime import get_runtime
from tasks.schedule_beat import SCHEDULED_RUN_TASK, default_registrar, scheduled_run_argsrepr

logger = logging.getLogger(__name__)


def schedule_service(rt: Runtime, label: str = "") -> ScheduleService:
    """The schedule service over this process's runtime; steps it enqueues carry `label`."""
    return build_services(rt, CeleryDispatcher(label=label), default_registrar()).schedules


@app.task(name=SCHEDULED_RUN_TASK, bind=True)
def scheduled_run(self, schedule_id: str) -> dict:
    service = schedule_service(get_runtime(), label=scheduled_run_argsrepr(schedule_id))
    result: FireResult = service.fire(schedule_id, fire_id=self.request.id or "")
    if result.code == "missing":  # removed while its entry was due: drop the entry too
        service.beat.remove(schedule_id)
    logger.info("schedule %s fired: %s %s", schedule_id, result.code, result.analysis_id or result.note)
    return {"decision": result.code, "analysis": result.analysis_id, "note": result.note}
