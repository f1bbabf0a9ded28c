"""What the fault tests (test_faults.py, test_feed_faults.py) count: every record is
10.00 of domestic compute at the program's 30%, 3.00 covered, so a tally of records is a
tally of money."""

from __future__ import annotations

from decimal import Decimal

from django.core.management import call_command

from compute.models import UsageRecord
from vouchers.ledger import ledger_verify
from vouchers.models import EntryKind, LedgerEntry

COVERED = Decimal("3.00")  # per record of 10.00
FACE = Decimal("1000.00")  # ledger_world's voucher


def assert_charged_once(w, record_ids: list[str], *, balance_before: Decimal = FACE) -> None:
    """Each record stored once and charged once; the voucher's balance is the tally."""
    stored = list(UsageRecord.objects.filter(data_center=w.dc).values_list("record_id", flat=True))
    assert sorted(stored) == sorted(record_ids)
    charges = LedgerEntry.objects.filter(voucher=w.voucher, kind=EntryKind.CHARGE)
    assert charges.count() == len(record_ids)
    assert -sum(e.amount for e in charges) == COVERED * len(record_ids)
    w.voucher.refresh_from_db()
    assert w.voucher.balance == balance_before - COVERED * len(record_ids)
    assert ledger_verify() == []
    call_command("verify_ledger")
    call_command("verify_audit")
