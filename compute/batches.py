"""The life of a usage batch around its application: putting its task on the broker,
giving it up when it cannot be applied, retrying it by hand, and the sweeper.

Applying (`compute.ingest.usage_batch_apply`) is idempotent, so every path here may
enqueue a batch more than once; what must never happen is a batch that stays pending for
ever (a poison batch re-queued every few minutes, crowding out the stuck ones) or one
whose task was lost with nobody noticing (the broker down when the API answered 202).

    queued ──task──▶ processing ──▶ done
       ▲                 │
       │  retry by hand  ▼ after MAX_ATTEMPTS starts, or its task's last retry
       └──────────── failed (failure_reason; the sweeper leaves it alone)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from compute.metrics import batch_failed
from compute.models import BATCH_PENDING, BatchStatus, DataCenter, UsageBatch
from portal.audit import audit_record
from portal.errors import DomainError
from portal.models import User
from portal.queue import BROKER_ERRORS, task_named

log = logging.getLogger(__name__)


# Starts of a batch's task (retries, redeliveries after a killed worker, the sweeper)
# after which it is given up. Enough for a database restart or a deploy; a batch that
# fails this often fails for a reason a person has to look at.
MAX_ATTEMPTS = 10
# A batch whose task never reached the broker is enqueued this long after it arrived.
OUTBOX_AFTER = timedelta(seconds=30)
# The sweeper's share per run: taken oldest first, so none is starved.
SWEEP_LIMIT = 500
# The task that applies a batch, asked for by name: compute.tasks imports this module.
APPLY_TASK = "compute.tasks.usage_batch_apply_task"


def usage_batch_enqueue(batch_id: int) -> bool:
    """Put the batch's task on the broker and note that it is there. Never raises: the
    batch is safe in PostgreSQL, and the sweeper enqueues it later if this fails (the
    API still answers 202 while Redis is down)."""
    try:
        task_named(APPLY_TASK).delay(batch_id)
    except BROKER_ERRORS:
        log.warning("usage batch %s: broker unreachable; the sweeper will enqueue it", batch_id)
        return False
    UsageBatch.objects.filter(pk=batch_id, enqueued_at__isnull=True).update(
        enqueued_at=timezone.now()
    )
    return True


def usage_batch_start(batch_id: int) -> int | None:
    """Count one more start of the batch's task; its starts so far, or None when there
    is nothing to do (done, failed, or unknown). One statement: it runs per batch."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE compute_usagebatch SET status = %s, started_at = now(),"
            " attempts = attempts + 1, enqueued_at = coalesce(enqueued_at, now())"
            " WHERE id = %s AND status IN (%s, %s) RETURNING attempts",
            [BatchStatus.PROCESSING, batch_id, *BATCH_PENDING],
        )
        row = cursor.fetchone()
    return None if row is None else row[0]


def usage_batch_fail(*, batch_id: int, reason: str) -> bool:
    """Give a pending batch up, with the reason people will read. False if it was no
    longer pending (applied meanwhile)."""
    reason = reason.replace("\x00", "")[:500]
    with transaction.atomic():
        batch = (
            UsageBatch.objects.select_for_update()
            .only("pk", "status", "data_center_id", "attempts")
            .filter(pk=batch_id, status__in=BATCH_PENDING)
            .first()
        )
        if batch is None:
            return False
        UsageBatch.objects.filter(pk=batch_id).update(
            status=BatchStatus.FAILED, failure_reason=reason, finished_at=timezone.now()
        )
        audit_record(
            action="usage_batch.fail",
            actor_label="system",
            target=batch,
            data={"attempts": batch.attempts, "reason": reason},
        )
    batch_failed()
    log.error("usage batch %s failed after %s attempts: %s", batch_id, batch.attempts, reason)
    return True


def usage_batch_retry(*, batch: UsageBatch, actor: User) -> UsageBatch:
    """Send a failed batch back to the queue with a fresh count of attempts (after the
    fault that failed it is mended). Audited; enqueued once the retry commits."""
    with transaction.atomic():
        locked = UsageBatch.objects.select_for_update().only("pk", "status").get(pk=batch.pk)
        if locked.status != BatchStatus.FAILED:
            raise DomainError("Only a failed batch can be retried.", code="conflict")
        UsageBatch.objects.filter(pk=batch.pk).update(
            status=BatchStatus.QUEUED,
            attempts=0,
            failure_reason="",
            finished_at=None,
            enqueued_at=None,
        )
        audit_record(action="usage_batch.retry", actor=actor, target=locked)
        transaction.on_commit(lambda: usage_batch_enqueue(batch.pk))
    batch.refresh_from_db()
    return batch


@dataclass(frozen=True)
class SweepOutcome:
    enqueued: list[int]
    failed: list[int]


def usage_batches_sweep(*, stale_after: timedelta) -> SweepOutcome:
    """Recover pending batches, oldest first: those whose task never reached the broker
    (after `OUTBOX_AFTER`), and those still pending `stale_after` after they arrived (a
    lost task, a worker killed mid-batch). A batch started `MAX_ATTEMPTS` times is
    failed instead of enqueued again, so poison never circulates."""
    now = timezone.now()
    pending = UsageBatch.objects.filter(status__in=BATCH_PENDING).only(
        "pk", "attempts", "enqueued_at", "created_at"
    )
    never_enqueued = pending.filter(enqueued_at__isnull=True, created_at__lt=now - OUTBOX_AFTER)
    stale = pending.filter(created_at__lt=now - stale_after)
    batches = (never_enqueued | stale).order_by("created_at", "pk")[:SWEEP_LIMIT]
    outcome = SweepOutcome([], [])
    for batch in batches:
        if batch.attempts >= MAX_ATTEMPTS:
            reason = f"Gave up after {batch.attempts} attempts to apply it."
            if usage_batch_fail(batch_id=batch.pk, reason=reason):
                outcome.failed.append(batch.pk)
            continue
        log.warning("usage batch %s is pending since %s; enqueueing it", batch.pk, batch.created_at)
        if not usage_batch_enqueue(batch.pk):
            # The broker is down (each try may take seconds against a hung Redis): the
            # next sweep, a minute on, tries again, oldest first.
            break
        outcome.enqueued.append(batch.pk)
    return outcome


def failed_batches(*, data_center: DataCenter | None = None) -> QuerySet[UsageBatch]:
    """The dead-letter list: failed batches, newest first (one data center's, or all)."""
    batches = UsageBatch.objects.filter(status=BatchStatus.FAILED).defer("body", "results_json")
    if data_center is not None:
        batches = batches.filter(data_center=data_center)
    return batches.select_related("data_center").order_by("-created_at", "-id")
