"""Poison work ends: a record no number can describe is rejected alone, a batch that
cannot be applied is failed with its reason (and left alone by the sweeper), a batch
whose task never reached the broker is found and enqueued, and a person can retry a
failed batch."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from compute import batches as batch_lifecycle
from compute.batches import MAX_ATTEMPTS, usage_batch_retry, usage_batches_sweep
from compute.ingest import apply as ingest_apply
from compute.models import BatchStatus, UsageBatch, UsageRecord
from portal.celery import app as celery_app
from portal.errors import DomainError
from portal.models import AuditEvent
from tests.compute.conftest import record
from tests.compute.usage_push import BATCHES, push, push_raw, raw_record, results

pytestmark = pytest.mark.usefixtures("eager_tasks")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("field", ["quantity", "amount"])
def test_a_non_finite_number_rejects_its_record_and_the_rest_is_applied(
    ledger_world, django_capture_on_commit_callbacks, constant, field
):
    w = ledger_world
    body = (
        '{"records": ['
        + raw_record(1, w.voucher.code, **{field: constant})
        + ", "
        + raw_record(2, w.voucher.code)
        + "]}"
    )
    response = push_raw(w, body.encode(), django_capture_on_commit_callbacks)
    assert response.status_code == 202
    poison, good = results(w, response)["results"]
    assert (poison["status"], poison["error"]["code"]) == ("rejected", "invalid")
    assert field in poison["error"]["message"]
    assert good["status"] == "accepted"
    assert UsageRecord.objects.get().record_id == "dc-2026-11-000002"
    call_command("verify_ledger")


def test_usage_ending_in_the_future_is_invalid(ledger_world, django_capture_on_commit_callbacks):
    w = ledger_world
    now = timezone.now()
    soon = (now + timedelta(minutes=2)).isoformat()
    later = (now + timedelta(minutes=30)).isoformat()
    start = (now - timedelta(hours=2)).isoformat()
    records = [
        record(1, w.voucher.code, started_at=start, ended_at=later),
        record(2, w.voucher.code, started_at=start, ended_at=soon),  # clock skew: allowed
        record(1, w.voucher.code, started_at=start, ended_at=later),  # a repeat of the first
    ]
    body = results(w, push(w, records, django_capture_on_commit_callbacks))
    future, skewed, repeat = body["results"]
    assert (future["status"], future["error"]["code"]) == ("rejected", "invalid")
    assert "ended_at" in future["error"]["message"]
    assert (repeat["status"], repeat["error"]["code"]) == ("rejected", "invalid")
    assert skewed["status"] == "accepted"
    assert list(UsageRecord.objects.values_list("record_id", flat=True)) == ["dc-2026-11-000002"]


def _always_failing(monkeypatch, calls: list[int]):
    def broken(batch):
        calls.append(batch.pk)
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(ingest_apply, "_apply", broken)


def _failed_batch(w, calls: list[int]) -> UsageBatch:
    """A batch whose task ran once and retried eight times, failing every time."""
    from compute.tasks import usage_batch_apply_task

    response = w.api.post(BATCHES, {"records": [record(1, w.voucher.code)]}, format="json")
    assert response.status_code == 202
    batch_id = response.json()["id"]
    # In-process, Celery applies each retry at once (no countdown), provided a retry is
    # not raised to the caller as an error.
    celery_app.conf.task_eager_propagates = False
    try:
        assert usage_batch_apply_task.apply(args=[batch_id]).get() == "failed"
    finally:
        celery_app.conf.task_eager_propagates = True
    return UsageBatch.objects.get(pk=batch_id)


def test_a_batch_that_cannot_be_applied_ends_failed_with_its_reason(
    ledger_world, django_capture_on_commit_callbacks, monkeypatch
):
    w = ledger_world
    calls: list[int] = []
    _always_failing(monkeypatch, calls)
    batch = _failed_batch(w, calls)
    # The task's first run and its eight retries, then it gives up.
    assert len(calls) == 9
    assert batch.status == BatchStatus.FAILED
    assert batch.failure_reason == "RuntimeError: disk on fire"
    detail = w.api.get(f"{BATCHES}/{batch.pk}").json()
    assert (detail["status"], detail["failure_reason"]) == ("failed", "RuntimeError: disk on fire")
    assert AuditEvent.objects.filter(action="usage_batch.fail", target_id=str(batch.pk)).exists()
    # The sweeper never takes it again, however old it is.
    UsageBatch.objects.filter(pk=batch.pk).update(created_at=timezone.now() - timedelta(days=1))
    assert usage_batches_sweep(stale_after=timedelta(minutes=10)).enqueued == []
    assert len(calls) == 9


def test_the_sweeper_fails_a_batch_started_too_often_instead_of_enqueueing_it(
    ledger_world, django_capture_on_commit_callbacks, monkeypatch
):
    w = ledger_world
    monkeypatch.setattr(batch_lifecycle, "usage_batch_enqueue", lambda pk: True)
    old, young = (
        UsageBatch.objects.create(data_center=w.dc, body_hash="x", received=1) for _ in "ab"
    )
    hour_ago = timezone.now() - timedelta(hours=1)
    UsageBatch.objects.filter(pk=old.pk).update(
        created_at=hour_ago, attempts=MAX_ATTEMPTS, enqueued_at=hour_ago
    )
    UsageBatch.objects.filter(pk=young.pk).update(created_at=hour_ago + timedelta(minutes=1))
    outcome = usage_batches_sweep(stale_after=timedelta(minutes=10))
    assert (outcome.failed, outcome.enqueued) == ([old.pk], [young.pk])
    old.refresh_from_db()
    assert old.status == BatchStatus.FAILED
    assert f"{MAX_ATTEMPTS} attempts" in old.failure_reason


def test_the_sweeper_takes_the_oldest_first(ledger_world, monkeypatch):
    w = ledger_world
    monkeypatch.setattr(batch_lifecycle, "SWEEP_LIMIT", 2)
    monkeypatch.setattr(batch_lifecycle, "usage_batch_enqueue", lambda pk: True)
    now = timezone.now()
    made = []
    for minutes in (20, 60, 40):  # created out of age order
        batch = UsageBatch.objects.create(data_center=w.dc, body_hash="x", received=1)
        UsageBatch.objects.filter(pk=batch.pk).update(
            created_at=now - timedelta(minutes=minutes), enqueued_at=now
        )
        made.append(batch.pk)
    outcome = usage_batches_sweep(stale_after=timedelta(minutes=10))
    assert outcome.enqueued == [made[1], made[2]]


def test_a_batch_whose_task_never_reached_the_broker_is_enqueued_by_the_sweeper(
    ledger_world, django_capture_on_commit_callbacks, monkeypatch
):
    """The outbox: the broker refused the task when the API answered 202."""
    w = ledger_world
    from compute.tasks import usage_batch_apply_task

    def broker_down(*args, **kwargs):
        raise ConnectionRefusedError("redis is down")

    with monkeypatch.context() as patch:
        patch.setattr(usage_batch_apply_task, "delay", broker_down)
        response = push(w, [record(1, w.voucher.code)], django_capture_on_commit_callbacks)
    assert response.status_code == 202
    batch = UsageBatch.objects.get()
    assert (batch.status, batch.enqueued_at) == (BatchStatus.QUEUED, None)
    # Not before OUTBOX_AFTER (the commit hook may still be publishing).
    assert usage_batches_sweep(stale_after=timedelta(minutes=10)).enqueued == []
    UsageBatch.objects.filter(pk=batch.pk).update(created_at=timezone.now() - timedelta(minutes=1))
    assert usage_batches_sweep(stale_after=timedelta(minutes=10)).enqueued == [batch.pk]
    batch.refresh_from_db()
    assert batch.status == BatchStatus.DONE and batch.enqueued_at is not None
    assert UsageRecord.objects.get().covered_amount == Decimal("30.00")


def test_a_failed_batch_retried_by_its_operator_is_applied_once(
    ledger_world, operator, client, django_capture_on_commit_callbacks, monkeypatch
):
    w = ledger_world
    calls: list[int] = []
    with monkeypatch.context() as patch:
        _always_failing(patch, calls)
        batch = _failed_batch(w, calls)
    assert batch.status == BatchStatus.FAILED
    client.force_login(operator)
    page = client.get(f"/dc/{w.dc.slug}/batches/{batch.pk}/")
    assert "disk on fire" in page.content.decode()
    assert client.get(f"/dc/{w.dc.slug}/batches/?failed=1").status_code == 200
    confirm = client.get(f"/dc/{w.dc.slug}/batches/{batch.pk}/retry/")
    assert confirm.status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(f"/dc/{w.dc.slug}/batches/{batch.pk}/retry/")
    assert done.status_code == 302
    batch.refresh_from_db()
    assert (batch.status, batch.accepted, batch.failure_reason) == (BatchStatus.DONE, 1, "")
    assert AuditEvent.objects.filter(action="usage_batch.retry", actor=operator).exists()
    # Only a failed batch can be retried; a done one is refused with a reason.
    with pytest.raises(DomainError) as refused:
        usage_batch_retry(batch=batch, actor=operator)
    assert refused.value.code == "conflict"
    assert UsageRecord.objects.count() == 1
    call_command("verify_ledger")


def test_another_data_centers_operator_cannot_retry(
    ledger_world, client, django_capture_on_commit_callbacks, monkeypatch
):
    from tests.factories import UserFactory

    w = ledger_world
    calls: list[int] = []
    with monkeypatch.context() as patch:
        _always_failing(patch, calls)
        batch = _failed_batch(w, calls)
    stranger = UserFactory(email="ops@zhongwei.test")
    w.other_dc.operators.add(stranger)
    client.force_login(stranger)
    assert client.post(f"/dc/{w.dc.slug}/batches/{batch.pk}/retry/").status_code == 404
    assert client.post(f"/dc/{w.other_dc.slug}/batches/{batch.pk}/retry/").status_code == 404
    batch.refresh_from_db()
    assert batch.status == BatchStatus.FAILED
