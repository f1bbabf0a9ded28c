"""verify_ledger sees what sums cannot (issue #15): each voucher's balance_after chain
entry by entry, each charge and reversal against its usage record, and manual
adjustments with their actor, reason and audit event. The tampering is done the way a
database administrator would: by SQL, the append-only trigger switched off."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from compute.models import UsageRecord
from compute.services import usage_record_void
from portal.audit import audit_record
from tests.compute.conftest import record
from vouchers.ledger import ledger_verify
from vouchers.ledger_chain import KEYED_CHAIN
from vouchers.models import EntryKind, LedgerEntry


@pytest.fixture
def charged(ledger_world, eager_tasks, django_capture_on_commit_callbacks):
    """Three records charged on the Shanghai voucher (30.00 each at the program's rate:
    1000.00 → 910.00), one of them then voided (→ 940.00)."""
    w = ledger_world
    with django_capture_on_commit_callbacks(execute=True):
        response = w.api.post(
            "/api/v1/usage/batches",
            {"records": [record(n, w.voucher.code) for n in (1, 2, 3)]},
            format="json",
        )
    assert response.status_code == 202
    usage_record_void(data_center=w.dc, record_id=record(3, "")["record_id"], reason="测试")
    assert ledger_verify() == []
    return w


def _sql(statement: str, params: list | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")  # triggers off
        cursor.execute(statement, params or [])


def _reasons() -> list[str]:
    """What the checks but the keyed chain say: every tampering below also breaks a
    voucher's keyed chain (`_chain_breaks`; tests/vouchers/test_ledger_chain.py)."""
    return [p.reason for p in ledger_verify() if KEYED_CHAIN not in p.reason]


def _chain_breaks() -> list[str]:
    return [p.reason for p in ledger_verify() if KEYED_CHAIN in p.reason]


def _entries(voucher) -> list[LedgerEntry]:
    return list(LedgerEntry.objects.filter(voucher=voucher).order_by("id"))


def _next_id() -> int:
    return LedgerEntry.objects.order_by("-id").values_list("id", flat=True).first() + 1


def test_an_inserted_adjust_entry_with_a_matching_balance_is_detected(charged):
    v = charged.voucher
    v.refresh_from_db()
    entry_id = _next_id()
    _sql(
        "INSERT INTO vouchers_ledgerentry (id, voucher_id, kind, amount, balance_after,"
        " actor_label, memo, created_at) VALUES (%s, %s, 'adjust', 50, %s, 'system', '', now())",
        [entry_id, v.pk, v.balance + 50],
    )
    _sql("UPDATE vouchers_voucher SET balance = balance + 50 WHERE id = %s", [v.pk])
    reasons = _reasons()
    assert reasons == [f"adjustment entry {entry_id} lacks an actor, a reason, its audit event"]
    assert _chain_breaks() == [
        f"entry {entry_id} breaks the voucher's keyed chain: it is not sealed (no MAC): "
        "written around the ledger's code"
    ]
    with pytest.raises(CommandError):
        call_command("verify_ledger")


def test_an_adjustment_with_actor_and_reason_still_needs_its_audit_event(charged, shanghai):
    v = charged.voucher
    v.refresh_from_db()
    entry_id = _next_id()
    _sql(
        "INSERT INTO vouchers_ledgerentry (id, voucher_id, kind, amount, balance_after,"
        " actor_id, actor_label, memo, created_at)"
        " VALUES (%s, %s, 'adjust', 50, %s, %s, %s, '补记', now())",
        [entry_id, v.pk, v.balance + 50, shanghai.manager.pk, shanghai.manager.email],
    )
    _sql("UPDATE vouchers_voucher SET balance = balance + 50 WHERE id = %s", [v.pk])
    assert _reasons() == [f"adjustment entry {entry_id} lacks its audit event"]
    # Recorded in the trail as the manual adjustment it is, it passes.
    audit_record(
        action="ledger.adjust",
        city=v.city,
        actor=shanghai.manager,
        target=v,
        data={"entry": entry_id, "amount": "50.00", "reason": "补记"},
    )
    assert _reasons() == []
    # Written around the code, it is still not sealed onto the voucher's chain.
    assert [f"entry {entry_id} breaks" in r for r in _chain_breaks()] == [True]


def test_a_charge_deleted_with_the_balances_patched_is_detected(charged):
    v = charged.voucher
    first_charge = next(e for e in _entries(v) if e.kind == EntryKind.CHARGE)
    amount = -first_charge.amount
    _sql("DELETE FROM vouchers_ledgerentry WHERE id = %s", [first_charge.pk])
    _sql(
        "UPDATE vouchers_ledgerentry SET balance_after = balance_after + %s"
        " WHERE voucher_id = %s AND id > %s",
        [amount, v.pk, first_charge.pk],
    )
    _sql("UPDATE vouchers_voucher SET balance = balance + %s WHERE id = %s", [amount, v.pk])
    record_pk = first_charge.usage_record_id
    record_id = UsageRecord.objects.get(pk=record_pk).record_id
    assert _reasons() == [
        f"usage record {record_id} (#{record_pk}, accepted) has 0 charge and 0 reversal "
        "entries, not 1 and 0"
    ]


def test_an_entry_whose_balance_after_was_edited_mid_chain_is_detected(charged):
    v = charged.voucher
    middle = _entries(v)[1]
    _sql(
        "UPDATE vouchers_ledgerentry SET balance_after = balance_after + 1 WHERE id = %s",
        [middle.pk],
    )
    problems = [p for p in ledger_verify() if KEYED_CHAIN not in p.reason]
    # The first broken link of the voucher: the sums, the last entry and the cached
    # balance all still agree.
    assert [p.reason for p in problems] == [
        f"entry {middle.pk}: balance_after does not follow from the entry before it"
    ]
    assert problems[0].code == v.code
    assert "stored ¥" in problems[0].describe()


def test_a_charge_altered_or_moved_to_another_voucher_is_detected(charged):
    v, other = charged.voucher, charged.other_voucher
    charges = [e for e in _entries(v) if e.kind == EntryKind.CHARGE]
    # One charge made smaller, its voucher's history patched to match.
    _sql("UPDATE vouchers_ledgerentry SET amount = amount + 1 WHERE id = %s", [charges[0].pk])
    _sql(
        "UPDATE vouchers_ledgerentry SET balance_after = balance_after + 1"
        " WHERE voucher_id = %s AND id >= %s",
        [v.pk, charges[0].pk],
    )
    _sql("UPDATE vouchers_voucher SET balance = balance + 1 WHERE id = %s", [v.pk])
    reasons = _reasons()
    assert reasons == [
        f"charge entry {charges[0].pk} has an amount other than the record's covered amount"
        f" (usage record #{charges[0].usage_record_id})"
    ]
    # A charge of the other voucher claiming this voucher's record.
    other_entries = _entries(other)
    _sql(
        "INSERT INTO vouchers_ledgerentry (id, voucher_id, kind, amount, balance_after,"
        " actor_label, usage_record_id, memo, created_at)"
        " VALUES (%s, %s, 'charge', %s, %s, 'x', %s, '', now())",
        [
            _next_id(),
            other.pk,
            charges[1].amount,
            other_entries[-1].balance_after + charges[1].amount,
            charges[1].usage_record_id,
        ],
    )
    _sql(
        "UPDATE vouchers_voucher SET balance = balance + %s WHERE id = %s",
        [charges[1].amount, other.pk],
    )
    assert any("a usage record of another voucher" in r for r in _reasons())


def test_a_reversal_of_a_record_not_void_is_detected(charged):
    v = charged.voucher
    v.refresh_from_db()
    accepted = UsageRecord.objects.filter(voucher=v, status="accepted").first()
    entry_id = _next_id()
    _sql(
        "INSERT INTO vouchers_ledgerentry (id, voucher_id, kind, amount, balance_after,"
        " actor_label, usage_record_id, memo, created_at)"
        " VALUES (%s, %s, 'reversal', %s, %s, 'x', %s, '', now())",
        [entry_id, v.pk, accepted.covered_amount, v.balance + accepted.covered_amount, accepted.pk],
    )
    _sql(
        "UPDATE vouchers_voucher SET balance = balance + %s WHERE id = %s",
        [accepted.covered_amount, v.pk],
    )
    reasons = _reasons()
    assert (
        f"reversal entry {entry_id} has a usage record not void (usage record #{accepted.pk})"
        in reasons
    )
    assert any("has 1 charge and 1 reversal entries, not 1 and 0" in r for r in reasons)


def test_the_checks_take_a_fixed_number_of_queries(charged, django_assert_max_num_queries):
    """Set-wise: the number of statements does not grow with vouchers or entries (ten
    since the programs' reserved awards are checked against their pending awards, and
    two for the keyed chain: the vouchers' heads, and the entries streamed)."""
    with django_assert_max_num_queries(12):
        assert ledger_verify() == []


def test_a_clean_history_with_voids_and_an_ended_voucher_passes(charged, shanghai):
    from vouchers.ledger import voucher_revoke

    voucher_revoke(voucher=charged.voucher, actor=shanghai.manager, reason="测试")
    usage_record_void(data_center=charged.dc, record_id=record(2, "")["record_id"], reason="x")
    assert ledger_verify() == []
    assert Decimal(0) == charged.voucher.__class__.objects.get(pk=charged.voucher.pk).balance
