"""A step that has committed but cannot enqueue the next one (the broker unreachable, as while
Sentinel promotes a replica) says so in one warning; the watchdog re-enqueues the next step. Before,
the task raised and an operator saw `raised unexpected: OperationalError` with a traceback on
every failover (the chaos run's primary kill, docs/chaos.md)."""

import logging
from types import SimpleNamespace

from tests.helpers import noop_config
from tests.servers import free_port


def test_a_committed_step_whose_next_enqueue_finds_no_broker_logs_one_warning(
    local_service, queue, runtime, actor, monkeypatch, caplog
):
    import tasks.steps as steps
    from tasks.celery_app import app as process_app
    from tasks.celery_app import make_celery
    from tasks.dispatcher import CeleryDispatcher

    gist = local_service.start(noop_config(3), actor)
    assert queue.drain(runtime, limit=1) == ["continue"]  # INIT
    analysis_id, chain, seq = queue.queue.pop(0)
    down = runtime.settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    monkeypatch.setattr(steps, "_dispatcher", CeleryDispatcher(make_celery(down)))
    process_app.set_current()
    caplog.set_level(logging.WARNING, logger="tasks.steps")

    answer = steps._step(SimpleNamespace(request=SimpleNamespace(hostname="w1")), analysis_id, chain, seq)

    assert answer["decision"] == "continue"
    assert runtime.store.load(gist.id).seq == seq  # committed: nothing to redo but the enqueue
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 1, messages
    assert messages[0].startswith(
        f"[{gist.id} chain={chain[:8]} seq={seq}] committed, but step {seq + 1} could not be enqueued ("
    )
    assert messages[0].endswith("): the watchdog re-enqueues it")
