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


@shared_task(acks_late=True, time_limit=120)
def usage_batches_sweep(minutes: int = 10) -> int:
    """Re-enqueue batches that should have been applied long ago (a lost task or a
    worker killed mid-batch). Applying is idempotent, so a false alarm costs nothing."""
    stale = usage_batches_stale(older_than=timedelta(minutes=minutes))
    for batch_id in stale:
        log.warning("usage batch %s is stale; enqueueing it again", batch_id)
        usage_batch_apply_task.delay(batch_id)
    return len(stale)
