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
from vouchers.ledger import LedgerMismatch, ledger_verify
from vouchers.ledger_checks import REPORT_LIMIT
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
    for pair in sorted(set(reported) | set(charged), key=str):
        usage, ledger = reported.get(pair) or Decimal("0"), charged.get(pair) or Decimal("0")
        if usage != ledger:
            found.append(
                (
                    "data_center_totals",
                    {
                        "data_center_id": pair[0],
                        "city_id": pair[1],
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


# Each charge and reversal against the usage record it came from, and each usage record
# against its entries: a ledger whose sums and chains agree can still hold a charge that
# no record explains, or have lost the charge of one (deleted with the balances patched).
_ENTRIES_WITHOUT_THEIR_RECORD = """
SELECT coalesce(v.code, '#' || e.voucher_id), e.id, e.kind, e.amount, r.id,
       CASE WHEN r.id IS NULL THEN 'no usage record'
            WHEN r.voucher_id <> e.voucher_id THEN 'a usage record of another voucher'
            WHEN e.kind = 'charge' AND r.status NOT IN ('accepted', 'void')
                 THEN 'a usage record neither accepted nor void'
            WHEN e.kind = 'reversal' AND r.status <> 'void' THEN 'a usage record not void'
            ELSE 'an amount other than the record''s covered amount' END,
       CASE WHEN e.kind = 'charge' THEN -r.covered_amount ELSE r.covered_amount END
FROM vouchers_ledgerentry e
LEFT JOIN vouchers_voucher v ON v.id = e.voucher_id
LEFT JOIN compute_usagerecord r ON r.id = e.usage_record_id
WHERE e.kind IN ('charge', 'reversal')
  AND ((r.id IS NULL
        -- Its record's month was archived (detached, compute.partitions): the key
        -- says where the record ended.
        AND NOT EXISTS (SELECT 1 FROM compute_usagerecordkey k
                        JOIN compute_usagearchive a
                          ON k.ended_at >= a.starts_at AND k.ended_at < a.ends_at
                        WHERE k.usage_record_id = e.usage_record_id))
       OR r.voucher_id <> e.voucher_id
       OR (e.kind = 'charge' AND (r.status NOT IN ('accepted', 'void')
                                  OR e.amount <> -r.covered_amount))
       OR (e.kind = 'reversal' AND (r.status <> 'void' OR e.amount <> r.covered_amount)))
ORDER BY e.id
LIMIT %s
"""
_RECORDS_WITHOUT_THEIR_ENTRIES = """
SELECT coalesce(v.code, '#' || r.voucher_id), r.id, r.record_id, r.status, r.covered_amount,
       coalesce(c.charges, 0), coalesce(c.reversals, 0)
FROM compute_usagerecord r
LEFT JOIN vouchers_voucher v ON v.id = r.voucher_id
LEFT JOIN (
    SELECT usage_record_id,
           count(*) FILTER (WHERE kind = 'charge') AS charges,
           count(*) FILTER (WHERE kind = 'reversal') AS reversals
    FROM vouchers_ledgerentry
    WHERE usage_record_id IS NOT NULL
    GROUP BY usage_record_id
) c ON c.usage_record_id = r.id
WHERE r.covered_amount > 0
  AND (coalesce(c.charges, 0) <> 1
       OR coalesce(c.reversals, 0) <> CASE WHEN r.status = 'void' THEN 1 ELSE 0 END)
ORDER BY r.id
LIMIT %s
"""


def ledger_usage_verify() -> list[LedgerMismatch]:
    """Every charge is minus the covered amount of an accepted (or since voided) usage
    record of the same voucher; every reversal is plus the covered amount of a voided
    one; a record that covered anything has exactly one charge, and one reversal once
    void. Registered into `vouchers.ledger.ledger_verify` (compute/security.py): two
    set-wise statements, a join and one aggregate over the entries."""
    with connection.cursor() as cursor:
        cursor.execute(_ENTRIES_WITHOUT_THEIR_RECORD, [REPORT_LIMIT])
        entries = cursor.fetchall()
        cursor.execute(_RECORDS_WITHOUT_THEIR_ENTRIES, [REPORT_LIMIT])
        records = cursor.fetchall()
    problems = []
    for code, entry_id, kind, amount, record_pk, why, expected in entries:
        on_record = f" (usage record #{record_pk})" if record_pk else ""
        wanted = "—" if expected is None else f"¥{expected}"
        problems.append(
            LedgerMismatch(
                code,
                amount,
                expected if expected is not None else Decimal("0"),
                f"{kind} entry {entry_id} has {why}{on_record}",
                figures=f"entry ¥{amount}, from the record {wanted}",
            )
        )
    for code, pk, record_id, status, covered, charges, reversals in records:
        reversals_wanted = 1 if status == RecordStatus.VOID else 0
        problems.append(
            LedgerMismatch(
                code,
                covered,
                covered,
                f"usage record {record_id} (#{pk}, {status}) has {charges} charge and "
                f"{reversals} reversal entries, not 1 and {reversals_wanted}",
                figures=f"covered ¥{covered}",
            )
        )
    return problems
