"""The voucher ledger anchored beside the audit trail (issue #15 item 5): entries deleted,
changed or truncated away by someone with the triggers off are named by
`verify_audit --anchors`, while entries written after the anchor are not a problem."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest
from django.db import connection

from portal.anchors import ANCHOR_FILE, anchors_verify, anchors_write
from tests.vouchers.conftest import make_company, make_program
from vouchers.ledger import voucher_issue, voucher_revoke
from vouchers.models import LedgerEntry


def _tamper(*statements: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        for statement in statements:
            cursor.execute(statement)
        cursor.execute("SET session_replication_role = origin")


@pytest.fixture
def vouchers(shanghai, shenzhen, startup_user):
    company = make_company(startup_user)
    return [
        voucher_issue(
            program=make_program(world.city, slug=f"compute-{n}"),
            company=company,
            amount=Decimal(amount),
            actor=world.approver,
            valid_from=date(2026, 11, 1),
        )
        for n, (world, amount) in enumerate(
            ((shanghai, "1000.00"), (shanghai, "300.00"), (shenzhen, "50.00"))
        )
    ]


def _ledger_lines(directory) -> list[dict]:
    lines = [json.loads(x) for x in (directory / ANCHOR_FILE).read_text().splitlines()]
    return [line for line in lines if line.get("kind") == "ledger"]


def test_each_citys_ledger_is_anchored_and_verifies(vouchers, shanghai, shenzhen, tmp_path):
    anchors_write(tmp_path)
    ledger = {line["chain"]: line for line in _ledger_lines(tmp_path)}
    assert set(ledger) == {shanghai.city.slug, shenzhen.city.slug}
    assert ledger[shanghai.city.slug]["count"] == 2
    assert ledger[shanghai.city.slug]["total"] == "1300.00"
    assert ledger[shenzhen.city.slug]["max_id"] == LedgerEntry.objects.get(voucher=vouchers[2]).pk
    assert anchors_verify(tmp_path) == []


def test_entries_written_after_the_anchor_are_fine(vouchers, shanghai, tmp_path):
    anchors_write(tmp_path)
    voucher_revoke(voucher=vouchers[0], actor=shanghai.manager, reason="核查不实")
    assert LedgerEntry.objects.filter(voucher=vouchers[0]).count() == 2
    assert anchors_verify(tmp_path) == []


def test_a_deleted_entry_is_detected(vouchers, tmp_path):
    anchors_write(tmp_path)
    entry = LedgerEntry.objects.get(voucher=vouchers[1])
    _tamper(f"DELETE FROM vouchers_ledgerentry WHERE id = {entry.pk}")  # noqa: S608
    problems = anchors_verify(tmp_path)
    assert len(problems) == 1 and "deleted" in problems[0].reason


def test_a_changed_entry_is_detected(vouchers, tmp_path):
    """Amount and balance changed together, so the sum alone would not show a memo or a
    kind; here the memo is what changes."""
    anchors_write(tmp_path)
    entry = LedgerEntry.objects.get(voucher=vouchers[0])
    _tamper(f"UPDATE vouchers_ledgerentry SET memo = 'forged' WHERE id = {entry.pk}")  # noqa: S608
    problems = anchors_verify(tmp_path)
    assert len(problems) == 1 and "changed" in problems[0].reason


def test_a_truncated_ledger_is_detected(vouchers, tmp_path):
    anchors_write(tmp_path)
    _tamper("SET CONSTRAINTS ALL IMMEDIATE", "TRUNCATE vouchers_ledgerentry")
    problems = anchors_verify(tmp_path)
    assert len(problems) == 2
    assert all("truncated" in p.reason for p in problems)


def test_the_ledger_anchor_goes_to_the_citys_auditors(vouchers, shanghai, tmp_path, settings):
    from django.core import mail

    from portal.tasks import audit_anchor_task

    settings.AUDIT_ANCHOR_DIR = tmp_path
    audit_anchor_task.apply().get()
    body = next(m.body for m in mail.outbox if m.to == [shanghai.auditor.email])
    assert '"kind":"ledger"' in body.replace(" ", "")
