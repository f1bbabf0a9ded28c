"""Compute's metrics at /metrics (compute/metrics.py) move with the work they count."""

from __future__ import annotations

import socket

from compute import batches
from compute.models import DataCenter, UsageBatch
from compute.tasks import feed_sync_task
from tests.compute.conftest import record
from tests.portal.test_metrics import scrape, value

BATCHES = "/api/v1/usage/batches"


def _delta(before: dict, after: dict, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_an_ingestion_moves_the_record_batch_and_latency_metrics(
    ledger_world, eager_tasks, django_capture_on_commit_callbacks
):
    w = ledger_world
    before = scrape()
    records = [
        record(1, w.voucher.code),
        record(2, w.voucher.code),
        record(1, w.voucher.code),  # the same record again: a duplicate
        record(3, "SH-26-NOPE-NOPE"),  # no such voucher
        record(4, w.voucher.code, amount="-5"),  # invalid
    ]
    with django_capture_on_commit_callbacks(execute=True):
        response = w.api.post(BATCHES, {"records": records}, format="json")
    assert response.status_code == 202
    after = scrape()
    records_total = "suanli_usage_records_total"
    assert _delta(before, after, records_total, status="accepted", code="") == 2
    assert _delta(before, after, records_total, status="duplicate", code="") == 1
    assert _delta(before, after, records_total, status="rejected", code="unknown_voucher") == 1
    assert _delta(before, after, records_total, status="rejected", code="invalid") == 1
    assert _delta(before, after, "suanli_usage_batches_total", status="done") == 1
    assert _delta(before, after, "suanli_usage_batch_apply_seconds_count") == 1
    assert _delta(before, after, "suanli_usage_batch_apply_seconds_sum") > 0
    api = [
        k
        for k in after
        if k[0] == "suanli_http_request_duration_seconds_count"
        and ("view", "api:batch_create") in k[1]
        and ("status", "202") in k[1]
    ]
    assert sum(after[k] - before.get(k, 0) for k in api) == 1


def test_applying_a_batch_again_counts_nothing(
    ledger_world, eager_tasks, django_capture_on_commit_callbacks
):
    from compute.tasks import usage_batch_apply_task

    w = ledger_world
    with django_capture_on_commit_callbacks(execute=True):
        batch_id = w.api.post(
            BATCHES, {"records": [record(7, w.voucher.code)]}, format="json"
        ).json()["id"]
    before = scrape()
    usage_batch_apply_task.delay(batch_id)  # a redelivery
    after = scrape()
    assert _delta(before, after, "suanli_usage_records_total", status="accepted", code="") == 0
    assert _delta(before, after, "suanli_usage_batches_total", status="done") == 0


def test_a_failed_batch_is_counted(ledger_world, eager_tasks, django_capture_on_commit_callbacks):
    w = ledger_world
    with django_capture_on_commit_callbacks(execute=False):
        batch_id = w.api.post(
            BATCHES, {"records": [record(8, w.voucher.code)]}, format="json"
        ).json()["id"]
    before = scrape()
    assert batches.usage_batch_fail(batch_id=batch_id, reason="test")
    assert not batches.usage_batch_fail(batch_id=batch_id, reason="again")  # not pending
    after = scrape()
    assert _delta(before, after, "suanli_usage_batches_total", status="failed") == 1
    assert UsageBatch.objects.get(pk=batch_id).status == "failed"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_failed_sync_counts_its_run_and_shows_the_feed_unhealthy(
    ledger_world, eager_tasks, settings
):
    settings.FEED_SYNC = {"attempts": 1, "backoff": 0, "timeout": 1, "page_deadline": 2}
    w = ledger_world
    DataCenter.objects.filter(pk=w.dc.pk).update(
        feed_url=f"http://127.0.0.1:{_closed_port()}/feed", feed_token="t"
    )
    before = scrape()
    assert value(before, "suanli_feed_healthy", data_center="guian") == 1
    # zhongwei offers no feed: not a series at all.
    assert ("suanli_feed_healthy", (("data_center", "zhongwei"),)) not in before
    assert feed_sync_task.delay(w.dc.pk).get() == "failed"
    after = scrape()
    assert _delta(before, after, "suanli_feed_sync_runs_total", outcome="failed") == 1
    assert value(after, "suanli_feed_healthy", data_center="guian") == 0


def test_pending_batches_and_their_age_are_read_when_scraped(ledger_world, eager_tasks):
    from datetime import timedelta

    from django.utils import timezone

    w = ledger_world
    before = scrape()
    assert value(before, "suanli_usage_batches_pending") == 0
    assert value(before, "suanli_usage_batch_oldest_pending_seconds") == 0
    # Received, never applied (its task lost): the sweeper's work, and a stuck queue's sign.
    batch_id = w.api.post(BATCHES, {"records": [record(9, w.voucher.code)]}, format="json").json()[
        "id"
    ]
    UsageBatch.objects.filter(pk=batch_id).update(created_at=timezone.now() - timedelta(minutes=12))
    after = scrape()
    assert value(after, "suanli_usage_batches_pending") == 1
    assert 700 < value(after, "suanli_usage_batch_oldest_pending_seconds") < 800


def test_open_discrepancies_are_counted_by_kind(ledger_world):
    from django.utils import timezone

    from compute.models import Discrepancy

    Discrepancy.objects.create(kind="usage_vs_ledger", detail="a", data_center=ledger_world.dc)
    Discrepancy.objects.create(kind="usage_vs_ledger", detail="b", data_center=ledger_world.dc)
    Discrepancy.objects.create(kind="ledger", detail="c", resolved_at=timezone.now())
    samples = scrape()
    assert value(samples, "suanli_discrepancies_open", kind="usage_vs_ledger") == 2
    assert ("suanli_discrepancies_open", (("kind", "ledger"),)) not in samples


def test_tasks_run_by_a_worker_are_counted_by_state():
    from celery.app.trace import build_tracer

    from portal.celery import app

    @app.task(name="tests.compute.metrics_probe")
    def probe(fail: bool) -> None:
        if fail:
            raise ValueError("no")

    before = scrape()
    tracer = build_tracer(probe.name, probe, app=app, eager=False, propagate=False)
    tracer("m-1", (False,), {}, {"id": "m-1"})
    tracer("m-2", (True,), {}, {"id": "m-2"})
    after = scrape()
    name = "suanli_celery_tasks_total"
    assert _delta(before, after, name, task=probe.name, state="SUCCESS") == 1
    assert _delta(before, after, name, task=probe.name, state="FAILURE") == 1
