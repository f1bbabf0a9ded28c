"""Celery tasks of the compute app: thin wrappers that take ids and call one service."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task

from compute import batches
from compute.ingest import usage_batch_apply
from compute.metrics import sync_run_ended
from compute.models import BatchStatus
from compute.services import api_keys_expiry_remind
from compute.webhooks.models import WebhookEvent
from compute.webhooks.services import webhook_emit
from compute.webhooks.tasks import webhook_deliver_task, webhook_deliveries_sweep  # noqa: F401 (registered for the worker)

log = logging.getLogger(__name__)


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=8,
    time_limit=600,
    soft_time_limit=540,
)
def usage_batch_apply_task(self, batch_id: int) -> str:
    """Apply one batch; retried with backoff on any error (a database restart, a
    deadlock), and failed with its reason once retries or starts run out, so a batch
    that cannot be applied ends instead of circulating (compute.batches)."""
    attempts = batches.usage_batch_start(batch_id)
    if attempts is None:
        return "skipped"
    try:
        batch = usage_batch_apply(batch_id=batch_id)
    except Exception as error:
        if self.request.retries >= self.max_retries or attempts >= batches.MAX_ATTEMPTS:
            log.exception("usage batch %s: giving up", batch_id)
            batches.usage_batch_fail(batch_id=batch_id, reason=f"{type(error).__name__}: {error}")
            return BatchStatus.FAILED
        raise self.retry(exc=error, countdown=min(2 ** (self.request.retries + 1), 300)) from error
    if batch.status == BatchStatus.DONE:
        # Tell the data center by webhook (compute.webhooks), after the batch committed.
        webhook_emit(
            event=WebhookEvent.BATCH_APPLIED,
            data_center_id=batch.data_center_id,
            data={
                "batch": batch.pk,
                "accepted": batch.accepted,
                "duplicate": batch.duplicate,
                "rejected": batch.rejected,
            },
        )
    log.info(
        "usage batch %s %s: %s accepted, %s duplicate, %s rejected",
        batch_id,
        batch.status,
        batch.accepted,
        batch.duplicate,
        batch.rejected,
    )
    return batch.status


@shared_task(acks_late=True, time_limit=120, soft_time_limit=110)
def usage_batches_sweep(minutes: int = 10) -> int:
    """Beat, every minute: enqueue batches whose task never reached the broker or was
    lost, fail those that keep failing (compute.batches.usage_batches_sweep)."""
    outcome = batches.usage_batches_sweep(stale_after=timedelta(minutes=minutes))
    return len(outcome.enqueued)


@shared_task(acks_late=True, time_limit=900, soft_time_limit=840)
def feed_sync_task(data_center_id: int) -> str:
    """One sync run; the run itself retries pages, so the task does not retry."""
    from compute.sync import feed_sync

    outcome = feed_sync(data_center_id=data_center_id).outcome
    sync_run_ended(outcome)
    return outcome


@shared_task(acks_late=True, time_limit=60, soft_time_limit=50)
def feed_sync_all() -> int:
    """Beat: a sync for every registered data center that offers a feed."""
    from compute.sync import data_centers_to_sync

    ids = data_centers_to_sync()
    for data_center_id in ids:
        feed_sync_task.delay(data_center_id)
    return len(ids)


@shared_task(acks_late=True, time_limit=3600, soft_time_limit=3500)
def ledger_reconcile_task() -> int:
    from compute.jobs import ledger_reconcile

    return len(ledger_reconcile())


@shared_task(acks_late=True, time_limit=3600, soft_time_limit=3500)
def settlements_monthly(period: str = "") -> int:
    """Beat, on the 1st: draft statements of the month that just ended (or of `period`,
    YYYY-MM, when re-run by hand)."""
    from compute.settlements import parse_period, previous_month, settlements_build_month

    month = parse_period(period) if period else previous_month()
    return len(settlements_build_month(period=month))


@shared_task(acks_late=True, time_limit=600, soft_time_limit=540)
def api_keys_expiry_remind_task() -> int:
    """Beat, daily: remind operators of API keys about to expire, once per key."""
    return api_keys_expiry_remind()


@shared_task(acks_late=True, time_limit=3600, soft_time_limit=3500)
def integrity_nightly_task() -> int:
    """The capacity check and the usage patterns over the last weeks (compute/integrity/)."""
    from compute.integrity.nightly import integrity_nightly

    return integrity_nightly()


@shared_task(acks_late=True, time_limit=600, soft_time_limit=540)
def usage_partitions_task() -> list[str]:
    """Beat, daily: the usage records' partitions for this month and the next ones, and
    for months whose records landed in DEFAULT (moved into them); see compute.partitions.
    Records left in DEFAULT (of archived months) are logged: they still count."""
    from compute.partitions import usage_partitions_ensure

    report = usage_partitions_ensure()
    if report.created:
        log.info("usage partitions created: %s", ", ".join(report.created))
    if report.default_rows:
        log.warning("%d usage records are in the DEFAULT partition", report.default_rows)
    return report.created
