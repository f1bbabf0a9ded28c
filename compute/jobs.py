"""Periodic jobs of the compute app: the nightly reconciliation of usage against the
ledger. Voucher expiry and reminders are the vouchers app's (vouchers/jobs.py).

A plain function the Celery beat task calls (compute/tasks.py), safe to run twice: a
discrepancy found again is not recorded twice, one no longer found is resolved.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from compute.models import Discrepancy, RecordStatus, UsageRecord
from vouchers.ledger import ledger_verify
from vouchers.models import EntryKind, Voucher

log = logging.getLogger(__name__)


def ledger_reconcile() -> list[Discrepancy]:
    """Check every balance against its entries, and each data center's accepted usage
    against the ledger's charges and reversals for it; record what disagrees.

    A discrepancy found again is not recorded twice; one no longer found is resolved.
    """
    found: list[tuple[str, dict]] = []
    for mismatch in ledger_verify():
        voucher = Voucher.objects.filter(code=mismatch.code).first()
        found.append(
            (
                "ledger",
                {
                    "voucher": voucher,
                    "city_id": voucher.city_id if voucher else None,
                    "detail": mismatch.describe(),
                },
            )
        )
    covered = (
        UsageRecord.objects.filter(status=RecordStatus.ACCEPTED)
        .values("data_center_id", "voucher__city_id")
        .annotate(total=Sum("covered_amount"))
    )
    reported = {(r["data_center_id"], r["voucher__city_id"]): r["total"] for r in covered}
    # One join, not a subquery per entry: the ledger has millions of rows.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT r.data_center_id, v.city_id, -SUM(e.amount) "
            "FROM vouchers_ledgerentry e "
            "JOIN compute_usagerecord r ON r.id = e.usage_record_id "
            "JOIN vouchers_voucher v ON v.id = e.voucher_id "
            "WHERE e.kind IN (%s, %s) GROUP BY 1, 2",
            [EntryKind.CHARGE, EntryKind.REVERSAL],
        )
        charged_rows = cursor.fetchall()
    charged = {(dc_id, city_id): total for dc_id, city_id, total in charged_rows}
    for key in sorted(set(reported) | set(charged), key=str):
        usage, ledger = reported.get(key) or Decimal("0"), charged.get(key) or Decimal("0")
        if usage != ledger:
            found.append(
                (
                    "data_center_totals",
                    {
                        "data_center_id": key[0],
                        "city_id": key[1],
                        "detail": f"usage records cover ¥{usage}, the ledger charged ¥{ledger}",
                    },
                )
            )
    now = timezone.now()
    open_ = {
        (d.kind, d.data_center_id, d.city_id, d.voucher_id, d.detail): d
        for d in Discrepancy.objects.filter(resolved_at__isnull=True)
    }
    seen = set()
    created = []
    for kind, fields in found:
        voucher = fields.get("voucher")
        key = (
            kind,
            fields.get("data_center_id"),
            fields.get("city_id"),
            voucher.pk if voucher else None,
            fields["detail"],
        )
        seen.add(key)
        if key not in open_:
            created.append(
                Discrepancy.objects.create(
                    kind=kind,
                    data_center_id=fields.get("data_center_id"),
                    city_id=fields.get("city_id"),
                    voucher=voucher,
                    detail=fields["detail"],
                )
            )
            log.error("reconciliation: %s %s", kind, fields["detail"])
    for key, discrepancy in open_.items():
        if key not in seen:
            Discrepancy.objects.filter(pk=discrepancy.pk).update(resolved_at=now)
    return created
