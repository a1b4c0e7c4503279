"""The Celery app: at-least-once delivery settings the step protocol is designed for."""

import redis
from celery import Celery
from celery.signals import beat_init, setup_logging

from analysis.db.connect import broker_transport_options, broker_url, redis_client
from analysis.db.keys import Keys
from analysis.logging_setup import configure_logging
from analysis.settings import Settings, settings_or_exit

STEP_QUEUE = "marketrank"
# The watchdog's own queue, consumed by a worker that runs no steps (Procfile `watchdog`), so a
# pass never waits behind a backlog of steps.
WATCHDOG_QUEUE = "marketrank.watchdog"
# The track record's evaluation pass (tasks/track_tasks.py): its own queue, off the steps' one.
TRACK_QUEUE = "marketrank.track"
TRACK_EVALUATE_TASK = "marketrank.track_evaluate"


def closed_broker_channels_raise_connection_errors() -> None:
    """Keep workers alive across a Redis restart: work around a kombu 5.7 Redis transport bug
    (the kind of celery/kombu#582 and #970).

    After a broker connection loss Celery closes the old connection. A channel of it that still
    holds unacknowledged (acks_late) messages then tries to requeue them, and a step that was
    running meanwhile later acknowledges its message on it; both build a Redis client from the
    channel's transport, which is gone, and raise AttributeError ('NoneType' object has no
    attribute 'hostname' / 'client'). Celery treats that as unrecoverable and the worker exits
    instead of reconnecting. Raised as the connection error it is, Celery and kombu handle it as
    they do any broker outage: the messages stay in the broker's unacked set and a worker's
    periodic sweep requeues them after VISIBILITY_TIMEOUT_S, a late redelivery the step protocol
    turns into a no-op.
    """
    import redis
    from kombu.transport import redis as kombu_redis

    connparams = kombu_redis.Channel._connparams
    if getattr(connparams, "raises_connection_errors", False):
        return

    def _connparams(self, asynchronous=False):
        if self.connection is None or self.connection.client is None:
            raise redis.ConnectionError("this broker channel's connection is closed")
        return connparams(self, asynchronous=asynchronous)

    # setattr: mypy refuses an attribute on a function and an assignment to a method (B010 wants them plain)
    setattr(_connparams, "raises_connection_errors", True)  # noqa: B010
    setattr(kombu_redis.Channel, "_connparams", _connparams)  # noqa: B010


def make_celery(settings: Settings) -> Celery:
    if settings.task_time_limit_s >= settings.visibility_timeout_s:
        raise ValueError(
            "TASK_TIME_LIMIT_S must be below VISIBILITY_TIMEOUT_S, or the broker "
            "redelivers tasks that are still running"
        )
    app = Celery(
        "marketrank",
        broker=broker_url(settings),
        include=["tasks.steps", "tasks.watchdog", "tasks.schedule_tasks", "tasks.track_tasks"],
    )
    transport = {"visibility_timeout": settings.visibility_timeout_s, **broker_transport_options(settings)}
    app.conf.update(
        task_default_queue=STEP_QUEUE,
        task_routes={
            "marketrank.watchdog": {"queue": WATCHDOG_QUEUE},
            TRACK_EVALUATE_TASK: {"queue": TRACK_QUEUE},
        },
        task_acks_late=True,  # a step's message survives a worker killed mid-step
        task_reject_on_worker_lost=True,  # ... and goes back to the queue at once
        worker_prefetch_multiplier=1,  # no step waits behind another on a busy worker
        broker_transport_options=transport,
        task_ignore_result=True,  # state lives in the gists, not in a result backend
        task_time_limit=settings.task_time_limit_s,
        task_soft_time_limit=max(settings.task_time_limit_s - 10, 5),
        worker_send_task_events=True,  # Flower sees every step
        task_send_sent_event=True,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # ride out a Redis restart
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        beat_schedule={
            # A pass no worker took within one interval expires: a stopped watchdog worker leaves
            # no pile of passes to run when it is back, only messages it discards at once.
            "watchdog": {
                "task": "marketrank.watchdog",
                "schedule": settings.watchdog_interval_s,
                "options": {"queue": WATCHDOG_QUEUE, "expires": settings.watchdog_interval_s},
            },
            # Pick records whose horizons closed are scored; one pass at a time is enough.
            "track": {
                "task": TRACK_EVALUATE_TASK,
                "schedule": settings.track_eval_interval_s,
                "options": {"queue": TRACK_QUEUE, "expires": settings.track_eval_interval_s},
            },
        },
        **redbeat_config(settings),
    )
    if settings.redis_sentinels:
        # redbeat's own Sentinel client takes no retry, and beat would exit on the switch: give it
        # ours (the workers' retries, through Sentinel), which redbeat uses when it is set.
        app.redbeat_redis = redis_client(
            settings, decode_responses=True, **redbeat_config(settings)["redbeat_redis_options"]
        )
    return app


def redbeat_config(settings: Settings) -> dict:
    """celery-redbeat: the schedule (the watchdog above and every user schedule) lives in Redis
    under KEY_PREFIX + "beat:" (analysis/db/keys.py), so schedules change at run time, survive
    restarts of beat, and a lock lets one beat at a time fire them."""
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    return dict(
        beat_scheduler="tasks.beat_scheduler:RedBeatStopQuickly",
        beat_max_loop_interval=settings.beat_max_loop_s,
        redbeat_redis_url=settings.redis_url,
        redbeat_key_prefix=Keys(settings.key_prefix).beat_prefix(),
        # The same retries as the workers' client: beat rides out a Redis restart.
        redbeat_redis_options={
            "retry": Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=20),
            "retry_on_error": [redis.ConnectionError, redis.TimeoutError],
            "health_check_interval": 30,
        },
    )


def current_task_name() -> str | None:
    from celery import current_task

    return current_task.name if current_task else None


@setup_logging.connect
def _use_our_logging(**_: object) -> None:
    configure_logging(task_name=current_task_name)


@beat_init.connect
def _beat_sends_no_sent_events(**_: object) -> None:
    """Beat sends the watchdog, whose idle passes are kept out of Flower's task list
    (tasks/watchdog.py): a task-sent event would list each of them as a pending row. Scheduled
    runs beat sends still show, from the moment a worker receives them."""
    app.conf.task_send_sent_event = False


closed_broker_channels_raise_connection_errors()
app = make_celery(settings_or_exit())  # every process imports this: a bad setting ends it here
