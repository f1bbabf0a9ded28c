"""Receiving a batch: only the envelope is checked, and the body is stored exactly as
it came before the API answers 202; its task is enqueued once the batch commits."""

from __future__ import annotations

from django.db import connection, transaction
from django.utils.translation import gettext as _

from compute.batches import usage_batch_enqueue
from compute.ingest.body import MAX_RECORDS, BatchBody
from compute.models import BatchSource, DataCenter, UsageBatch
from portal.db import execute_bound
from portal.errors import DomainError
from portal.locks import USAGE_IDEMPOTENCY_KEY


def usage_batch_receive(
    *,
    data_center: DataCenter,
    body: BatchBody,
    idempotency_key: str = "",
    source: str = BatchSource.PUSH,
) -> tuple[UsageBatch, bool]:
    """Store a batch durably and enqueue its application. Returns (batch, created).

    Only the envelope is checked here; records are checked by the worker, one rejection
    per bad record. With an idempotency key, the same key and body (byte for byte)
    return the first batch; the same key with another body is a conflict.
    """
    records = body.data.get("records") if isinstance(body.data, dict) else None
    if not isinstance(records, list) or not records:
        raise DomainError(
            _("The body must be an object with a non-empty 'records' list."),
            code="invalid",
            fields={"records": [_("A non-empty list is required.")]},
        )
    if len(records) > MAX_RECORDS:
        raise DomainError(
            _("At most %(n)s records per batch.") % {"n": MAX_RECORDS},
            code="invalid",
            fields={"records": [_("At most %(n)s records per batch.") % {"n": MAX_RECORDS}]},
        )
    idempotency_key = (idempotency_key or "").strip()
    if len(idempotency_key) > 200:
        raise DomainError(_("The Idempotency-Key header is longer than 200 characters."))
    with transaction.atomic():
        if idempotency_key:
            # Serialise requests with the same key so the second sees the first.
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                    [USAGE_IDEMPOTENCY_KEY, f"{data_center.pk}:{idempotency_key}"],
                )
            earlier = (
                UsageBatch.objects.filter(data_center=data_center, idempotency_key=idempotency_key)
                .defer("body", "results_json")
                .first()
            )
            if earlier is not None:
                if earlier.body_hash != body.digest:
                    raise DomainError(
                        _("This Idempotency-Key was used with a different body."),
                        code="conflict",
                    )
                return earlier, False
        batch = UsageBatch.objects.create(
            data_center=data_center,
            source=source,
            idempotency_key=idempotency_key,
            body_hash=body.digest,
            received=len(records),
            body="",
        )
        # The body (up to 10 MB) bound by the server, not quoted into the SQL text.
        execute_bound(
            "UPDATE compute_usagebatch SET body = %s WHERE id = %s", [body.text, batch.pk]
        )
        batch.body = body.text
        transaction.on_commit(lambda: usage_batch_enqueue(batch.pk))
    return batch, True
