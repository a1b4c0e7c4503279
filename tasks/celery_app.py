"""The Celery app: at-least-once delivery settings the step protocol is designed for."""

from celery import Celery
from celery.signals import setup_logging

from analysis.logging_setup import configure_logging
from analysis.settings import Settings, get_settings


def make_celery(settings: Settings) -> Celery:
    if settings.task_time_limit_s >= settings.visibility_timeout_s:
        raise ValueError("TASK_TIME_LIMIT_S must be below VISIBILITY_TIMEOUT_S, or the broker "
                         "redelivers tasks that are still running")
    app = Celery("marketrank", broker=settings.redis_url,
                 include=["tasks.steps", "tasks.watchdog", "tasks.bench_tasks"])
    transport = {"visibility_timeout": settings.visibility_timeout_s}
    app.conf.update(
        task_default_queue="marketrank",
        task_acks_late=True,              # a step's message survives a worker killed mid-step
        task_reject_on_worker_lost=True,  # ... and goes back to the queue at once
        worker_prefetch_multiplier=1,     # no step waits behind another on a busy worker
        broker_transport_options=transport,
        task_ignore_result=True,          # state lives in the gists, not in a result backend
        task_time_limit=settings.task_time_limit_s,
        task_soft_time_limit=max(settings.task_time_limit_s - 10, 5),
        worker_send_task_events=True,     # Flower sees every step
        task_send_sent_event=True,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # ride out a Redis restart
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        beat_schedule={
            "watchdog": {"task": "marketrank.watchdog", "schedule": settings.watchdog_interval_s},
        },
    )
    return app


@setup_logging.connect
def _use_our_logging(**_: object) -> None:
    configure_logging()


app = make_celery(get_settings())
