"""Celery tasks of webhooks (registered by compute.tasks, which the worker imports)."""

from __future__ import annotations

from celery import shared_task

from compute.webhooks.services import deliveries_due, delivery_attempt
from portal.queue import BROKER_ERRORS


@shared_task(acks_late=True, time_limit=60, soft_time_limit=50)
def webhook_deliver_task(delivery_id: int) -> str:
    """One try. The next one, if any, is the sweeper's: a message held for hours with
    a countdown is one a broker restart loses or a worker redelivers early."""
    return delivery_attempt(delivery_id).status


@shared_task(acks_late=True, time_limit=60, soft_time_limit=50)
def webhook_deliveries_sweep() -> int:
    """Beat, every minute: publish the deliveries whose next try is due."""
    due = deliveries_due()
    for delivery_id in due:
        try:
            webhook_deliver_task.delay(delivery_id)
        except BROKER_ERRORS:
            break
    return len(due)
