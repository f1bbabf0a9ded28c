"""Celery queues by kind of work (settings.TASK_QUEUES, portal.celery.route_task)."""

from __future__ import annotations

import pytest

from portal.celery import app

EXPECTED = {
    "compute.tasks.usage_batch_apply_task": "ingest",
    "compute.tasks.usage_batches_sweep": "ingest",
    "compute.tasks.feed_sync_all": "sync",
    "compute.tasks.feed_sync_task": "sync",
    "vouchers.tasks.application_notify": "notifications",
    "vouchers.tasks.review_assigned_notify": "notifications",
    "vouchers.tasks.invitation_send": "notifications",
    "portal.tasks.staff_invitation_send": "notifications",
    "vouchers.tasks.reminders_send_task": "notifications",
    "vouchers.tasks.outcome_report_notify": "notifications",
    "vouchers.tasks.outcome_reminders_send_task": "notifications",
    "compute.webhooks.tasks.webhook_deliver_task": "notifications",
    "compute.webhooks.tasks.webhook_deliveries_sweep": "notifications",
    "compute.tasks.api_keys_expiry_remind_task": "notifications",
    "portal.tasks.audit_anchor_task": "notifications",
    "compute.tasks.settlements_monthly": "reports",
    "compute.tasks.ledger_reconcile_task": "reports",
    "compute.tasks.integrity_nightly_task": "reports",
    "compute.tasks.usage_partitions_task": "reports",
    "vouchers.tasks.vouchers_expire_due_task": "reports",
    "vouchers.tasks.awards_lapse_due_task": "reports",
    "portal.tasks.audit_chain_verify": "reports",
}


def _queue(name: str) -> str:
    return app.amqp.router.route({}, name)["queue"].name


@pytest.fixture
def default_queue():
    """The queue tests publish to, restored afterwards."""
    saved = app.conf.task_default_queue
    yield
    app.conf.task_default_queue = saved


@pytest.mark.parametrize(("task", "queue"), sorted(EXPECTED.items()))
def test_each_task_goes_to_the_queue_of_its_kind(default_queue, task, queue):
    app.conf.task_default_queue = "celery"
    assert _queue(task) == queue


def test_every_task_of_ours_has_a_queue_and_names_are_real(default_queue):
    app.loader.import_default_modules()
    ours = {n for n in app.tasks if n.split(".")[0] in {"portal", "vouchers", "compute"}}
    assert ours == set(EXPECTED), "a new task: give it its queue in settings.TASK_QUEUES"


def test_anything_else_stays_on_the_default_queue(default_queue):
    app.conf.task_default_queue = "celery"
    assert _queue("celery.backend_cleanup") == "celery"
    assert _queue("somebody.elses.task") == "celery"


def test_a_queue_of_its_own_takes_every_task(default_queue):
    """CELERY_QUEUE (and the test worker of tests/integration.py, which switches the
    default queue while it runs): one worker on one queue runs everything."""
    app.conf.task_default_queue = "test-0123456789"
    for task in EXPECTED:
        assert _queue(task) == "test-0123456789"


def test_an_explicit_queue_wins(default_queue):
    app.conf.task_default_queue = "celery"
    route = app.amqp.router.route({"queue": "reports"}, "compute.tasks.usage_batch_apply_task")
    assert route["queue"].name == "reports"


def test_publishing_puts_the_message_on_the_queue_of_its_kind(default_queue):
    """Through the real broker (this run's Redis database): the message of an ingest
    task lands in kombu's `ingest` list, and is taken out again."""
    import json

    from compute.tasks import usage_batches_sweep
    from portal.heartbeat import redis_client

    app.conf.task_default_queue = "celery"
    client = redis_client(app.conf.broker_url)
    result = usage_batches_sweep.delay()
    ours = [
        raw
        for raw in client.lrange("ingest", 0, -1)
        if json.loads(raw)["headers"]["id"] == result.id
    ]
    assert len(ours) == 1
    client.lrem("ingest", 1, ours[0])
