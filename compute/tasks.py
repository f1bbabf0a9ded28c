"""Celery tasks of the compute app: thin wrappers that take ids and call one service."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.db.models import F
from django.utils import timezone

from compute.models import BatchStatus, UsageBatch
from compute.usage import usage_batch_apply, usage_batches_stale

log = logging.getLogger(__name__)


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(Exception,),
    retry_backoff=2,
    retry_backoff_max=300,
    max_retries=8,
    time_limit=600,
    soft_time_limit=540,
)
def usage_batch_apply_task(batch_id: int) -> str:
    UsageBatch.objects.filter(pk=batch_id, status=BatchStatus.QUEUED).update(
        status=BatchStatus.PROCESSING, started_at=timezone.now(), attempts=F("attempts") + 1
    )
    batch = usage_batch_apply(batch_id=batch_id)
    return batch.status


@shared_task(acks_late=True, time_limit=120, soft_time_limit=110)
def usage_batches_sweep(minutes: int = 10) -> int:
    """Re-enqueue batches that should have been applied long ago (a lost task or a
    worker killed mid-batch). Applying is idempotent, so a false alarm costs nothing."""
    stale = usage_batches_stale(older_than=timedelta(minutes=minutes))
    for batch_id in stale:
        log.warning("usage batch %s is stale; enqueueing it again", batch_id)
        usage_batch_apply_task.delay(batch_id)
    return len(stale)


@shared_task(acks_late=True, time_limit=900, soft_time_limit=840)
def feed_sync_task(data_center_id: int) -> str:
    """One sync run; the run itself retries pages, so the task does not retry."""
    from compute.sync import feed_sync

    return feed_sync(data_center_id=data_center_id).outcome


@shared_task(acks_late=True, time_limit=60, soft_time_limit=50)
def feed_sync_all() -> int:
    """Beat: a sync for every registered data center that offers a feed."""
    from compute.sync import data_centers_to_sync

    ids = data_centers_to_sync()
    for data_center_id in ids:
        feed_sync_task.delay(data_center_id)
    return len(ids)


@shared_task(acks_late=True, time_limit=1800, soft_time_limit=1700)
def vouchers_expire_due_task() -> int:
    from compute.jobs import vouchers_expire_due

    return len(vouchers_expire_due())


@shared_task(acks_late=True, time_limit=3600, soft_time_limit=3500)
def ledger_reconcile_task() -> int:
    from compute.jobs import ledger_reconcile

    return len(ledger_reconcile())


@shared_task(acks_late=True, time_limit=1800, soft_time_limit=1700)
def reminders_send_task() -> int:
    from compute.jobs import reminders_send

    return reminders_send()


@shared_task(acks_late=True, time_limit=3600, soft_time_limit=3500)
def settlements_monthly(period: str = "") -> int:
    """Beat, on the 1st: draft statements of the month that just ended (or of `period`,
    YYYY-MM, when re-run by hand)."""
    from compute.settlements import parse_period, previous_month, settlements_build_month

    month = parse_period(period) if period else previous_month()
    return len(settlements_build_month(period=month))
