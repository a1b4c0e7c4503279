"""The service's StepDispatcher on Celery: steps sent by task name, with readable names and
arguments in Flower, and the time each was sent (the `sent_at` header: health reads the age of the
oldest queued step). By name, so this module needs only the app (tasks/steps.py imports it, never
the reverse) and can drive a Celery app other than the process's own (the test harness,
tests/stack.py, which the chaos run uses too)."""

import time

from celery import Celery

INIT_TASK = "marketrank.init"
RANK_STEP_TASK = "marketrank.rank_step"


STEP_HEADER = "mr_step"


def step_header(analysis_id: str, chain: str, seq: int) -> str:
    return f"{analysis_id}:{chain}:{seq}"


def step_argsrepr(analysis_id: str, chain: str, seq: int, label: str = "") -> str:
    return f"analysis={analysis_id} seq={seq} chain={chain[:8]}" + (f" {label}" if label else "")


class CeleryDispatcher:
    """`label` (e.g. `schedule=<id>`) is added to what Flower shows of the steps it enqueues."""

    def __init__(self, app: Celery | None = None, label: str = ""):
        if app is None:
            from tasks.celery_app import app as process_app

            app = process_app
        self.app: Celery = app
        self.label = label

    def enqueue_step(self, analysis_id: str, chain: str, seq: int) -> None:
        # The header names the step the message delivers, so the watchdog can tell a step that
        # waits in the broker from a lost one without decoding bodies (tasks/ops.py, pending_steps).
        self.app.send_task(
            INIT_TASK if seq == 0 else RANK_STEP_TASK,
            args=(analysis_id, chain, seq),
            argsrepr=step_argsrepr(analysis_id, chain, seq, self.label),
            headers={"sent_at": time.time(), STEP_HEADER: step_header(analysis_id, chain, seq)},
        )
