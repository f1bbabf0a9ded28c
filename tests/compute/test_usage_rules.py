"""The usage rules of docs/api.md, pushed through the API and applied by the batch task."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone

from compute.models import BatchStatus, RedemptionStatus, UsageBatch, UsageRecord
from tests.compute.conftest import record
from tests.compute.usage_push import push, results
from vouchers.ledger import voucher_revoke, voucher_suspend
from vouchers.models import EntryKind, LedgerEntry

pytestmark = pytest.mark.usefixtures("eager_tasks")


def test_accepted_record_charges_the_rate_share(ledger_world, django_capture_on_commit_callbacks):
    w = ledger_world
    response = push(
        w, [record(1, w.voucher.code, amount="1536.00")], django_capture_on_commit_callbacks
    )
    assert response.status_code == 202
    assert response.json()["status"] == "queued"
    assert response.json()["received"] == 1
    body = results(w, response)
    assert body["counts"] == {"accepted": 1, "duplicate": 0, "rejected": 0}
    assert body["results"][0] == {
        "record_id": "dc-2026-11-000001",
        "status": "accepted",
        "covered_amount": "460.80",  # 1536.00 x 0.30
        "error": None,
    }
    w.voucher.refresh_from_db()
    assert w.voucher.balance == Decimal("539.20")
    w.redemption.refresh_from_db()
    assert w.redemption.covered_total == Decimal("460.80")
    entry = LedgerEntry.objects.filter(voucher=w.voucher, kind=EntryKind.CHARGE).get()
    assert entry.amount == Decimal("-460.80")
    stored = UsageRecord.objects.get()
    assert entry.usage_record_id == stored.pk
    # Left out of the COPYs, filled by the columns' defaults: the time of the statement
    # that wrote them, after the batch was received.
    batch = UsageBatch.objects.get()
    assert (stored.status, stored.void_reason) == ("accepted", "")
    assert batch.created_at <= stored.created_at <= entry.created_at <= timezone.now()


def test_covered_share_rounds_half_up(ledger_world, django_capture_on_commit_callbacks):
    w = ledger_world
    # 0.15 x 0.30 = 0.045 -> 0.05 (half up, not banker's 0.04)
    response = push(
        w,
        [record(1, w.voucher.code, amount="0.15")],
        django_capture_on_commit_callbacks,
    )
    assert results(w, response)["results"][0]["covered_amount"] == "0.05"


def test_covered_is_capped_by_balance_and_still_accepted(
    ledger_world, django_capture_on_commit_callbacks
):
    w = ledger_world
    records = [
        record(1, w.voucher.code, amount="3000.00"),
        record(2, w.voucher.code, amount="1000.00"),  # a 300.00 share, 100.00 left
    ]
    body = results(w, push(w, records, django_capture_on_commit_callbacks))
    assert [r["covered_amount"] for r in body["results"]] == ["900.00", "100.00"]
    w.voucher.refresh_from_db()
    assert w.voucher.balance == Decimal("0.00")
    assert w.voucher.status == "exhausted"
    body = results(w, push(w, [record(3, w.voucher.code)], django_capture_on_commit_callbacks))
    assert body["results"][0]["status"] == "accepted"
    assert body["results"][0]["covered_amount"] == "0.00"


def test_covered_is_capped_by_the_redemption_cap(ledger_world, django_capture_on_commit_callbacks):
    w = ledger_world
    w.redemption.amount_cap = Decimal("50.00")
    w.redemption.save()
    records = [
        record(1, w.voucher.code, amount="100.00"),
        record(2, w.voucher.code, amount="100.00"),
    ]
    body = results(w, push(w, records, django_capture_on_commit_callbacks))
    assert [r["covered_amount"] for r in body["results"]] == ["30.00", "20.00"]


def test_duplicate_returns_the_original_covered_amount(
    ledger_world, django_capture_on_commit_callbacks
):
    w = ledger_world
    results(w, push(w, [record(1, w.voucher.code)], django_capture_on_commit_callbacks))
    body = results(w, push(w, [record(1, w.voucher.code)], django_capture_on_commit_callbacks))
    assert body["results"][0] == {
        "record_id": "dc-2026-11-000001",
        "status": "duplicate",
        "covered_amount": "30.00",
        "error": None,
    }
    assert LedgerEntry.objects.filter(kind=EntryKind.CHARGE).count() == 1


def test_duplicate_within_one_batch(ledger_world, django_capture_on_commit_callbacks):
    w = ledger_world
    body = results(
        w,
        push(
            w,
            [record(1, w.voucher.code), record(1, w.voucher.code)],
            django_capture_on_commit_callbacks,
        ),
    )
    assert [r["status"] for r in body["results"]] == ["accepted", "duplicate"]
    assert UsageRecord.objects.count() == 1


def test_same_record_id_with_other_content_is_a_conflict(
    ledger_world, django_capture_on_commit_callbacks
):
    w = ledger_world
    results(w, push(w, [record(1, w.voucher.code)], django_capture_on_commit_callbacks))
    body = results(
        w, push(w, [record(1, w.voucher.code, amount="99.00")], django_capture_on_commit_callbacks)
    )
    assert body["results"][0]["status"] == "rejected"
    assert body["results"][0]["error"]["code"] == "conflict"


def test_equivalent_content_in_another_notation_is_a_duplicate(
    ledger_world, django_capture_on_commit_callbacks
):
    w = ledger_world
    results(w, push(w, [record(1, w.voucher.code)], django_capture_on_commit_callbacks))
    same = record(
        1,
        w.voucher.code,
        started_at="2026-11-02T00:00:00Z",
        ended_at="2026-11-02T12:00:00+00:00",
        quantity=96,
        amount="100.0",
    )
    body = results(w, push(w, [same], django_capture_on_commit_callbacks))
    assert body["results"][0]["status"] == "duplicate"


def test_a_repeat_within_a_batch_is_compared_by_value(
    ledger_world, django_capture_on_commit_callbacks
):
    w = ledger_world
    first = record(1, w.voucher.code)
    same = record(1, w.voucher.code, ended_at="2026-11-02T12:00:00Z", quantity=96, amount="100")
    other = record(1, w.voucher.code, ended_at="2026-11-02T12:00:01Z")
    body = results(w, push(w, [first, same, other], django_capture_on_commit_callbacks))
    assert [(r["status"], r["covered_amount"]) for r in body["results"]] == [
        ("accepted", "30.00"),
        ("duplicate", "30.00"),
        ("rejected", None),
    ]
    assert body["results"][2]["error"]["code"] == "conflict"
    assert UsageRecord.objects.count() == 1


def _meanwhile(monkeypatch, change):
    """Run `change` after the batch was planned and its records written, just before
    the vouchers are locked: what a concurrent transaction may do."""
    from compute.ingest import apply
    from portal.locks import single_writer

    charge = apply._charge
    pending = [change]

    def changed_then_charge(*args, **kwargs):
        # Run inside the batch's transaction, standing in for another one: its locks
        # are not this transaction's order (portal.locks.single_writer).
        with single_writer():
            while pending:  # once: `change` may apply a batch itself
                pending.pop()()
        return charge(*args, **kwargs)

    monkeypatch.setattr(apply, "_charge", changed_then_charge)


def test_a_voucher_suspended_meanwhile_is_not_charged(
    ledger_world, django_capture_on_commit_callbacks, shanghai, monkeypatch
):
    w = ledger_world
    _meanwhile(
        monkeypatch,
        lambda: voucher_suspend(voucher=w.voucher, actor=shanghai.manager, reason="核查"),
    )
    body = results(w, push(w, [record(1, w.voucher.code)], django_capture_on_commit_callbacks))
    assert body["results"][0]["error"]["code"] == "voucher_inactive"
    assert not UsageRecord.objects.exists()
    assert not LedgerEntry.objects.filter(kind=EntryKind.CHARGE).exists()
    call_command("verify_ledger")


def test_a_redemption_closed_meanwhile_is_not_charged(
    ledger_world, django_capture_on_commit_callbacks, monkeypatch
):
    w = ledger_world

    def close():
        w.redemption.status = RedemptionStatus.CLOSED
        w.redemption.save()

    _meanwhile(monkeypatch, close)
    body = results(w, push(w, [record(1, w.voucher.code)], django_capture_on_commit_callbacks))
    assert body["results"][0]["error"]["code"] == "not_authorized"
    assert not UsageRecord.objects.exists()


def test_a_voucher_spent_meanwhile_covers_what_is_left(
    ledger_world, django_capture_on_commit_callbacks, monkeypatch
):
    """The record was written with its full share; under the lock it gets what another
    batch, applied meanwhile, left."""
    w = ledger_world
    _meanwhile(
        monkeypatch,
        lambda: results(
            w,
            push(
                w,
                [record(9, w.voucher.code, amount="3300.00")],  # 990.00 of 1000.00
                django_capture_on_commit_callbacks,
            ),
        ),
    )
    body = results(
        w,
        push(w, [record(1, w.voucher.code, amount="100.00")], django_capture_on_commit_callbacks),
    )
    assert body["results"][0]["covered_amount"] == "10.00"
    assert UsageRecord.objects.get(record_id=record(1, "")["record_id"]).covered_amount == Decimal(
        "10.00"
    )
    w.voucher.refresh_from_db()
    assert w.voucher.balance == Decimal("0.00")
    call_command("verify_ledger")


def test_a_cap_lowered_meanwhile_covers_what_it_leaves(
    ledger_world, django_capture_on_commit_callbacks, monkeypatch
):
    """The plan's redemption totals no longer fit: nothing of the planned update stays,
    the records are settled again and the redemption counts each yuan once."""
    from compute.models import Redemption

    w = ledger_world
    _meanwhile(
        monkeypatch,
        lambda: Redemption.objects.filter(pk=w.redemption.pk).update(amount_cap=Decimal("40.00")),
    )
    records = [record(1, w.voucher.code, amount="100.00"), record(2, w.voucher.code)]
    body = results(w, push(w, records, django_capture_on_commit_callbacks))
    assert [r["covered_amount"] for r in body["results"]] == ["30.00", "10.00"]
    w.redemption.refresh_from_db()
    assert w.redemption.covered_total == Decimal("40.00")
    w.voucher.refresh_from_db()
    assert w.voucher.balance == Decimal("960.00")
    call_command("verify_ledger")


def test_one_redemption_closed_meanwhile_leaves_the_others_charged_once(
    ledger_world, django_capture_on_commit_callbacks, monkeypatch, shanghai
):
    from compute.models import Redemption
    from vouchers.ledger import voucher_issue

    w = ledger_world
    second = voucher_issue(
        program=w.program,
        company=w.company,
        amount=Decimal("1000.00"),
        actor=shanghai.approver,
        valid_from=w.voucher.valid_from,
    )
    closing = Redemption.objects.create(
        voucher=second, data_center=w.dc, contract_ref="GA-2", status=RedemptionStatus.ACTIVE
    )
    _meanwhile(
        monkeypatch,
        lambda: Redemption.objects.filter(pk=closing.pk).update(status=RedemptionStatus.CLOSED),
    )
    records = [record(1, w.voucher.code), record(2, second.code), record(3, w.voucher.code)]
    body = results(w, push(w, records, django_capture_on_commit_callbacks))
    assert [(r["status"], r["covered_amount"]) for r in body["results"]] == [
        ("accepted", "30.00"),
        ("rejected", None),
        ("accepted", "30.00"),
    ]
    assert body["results"][1]["error"]["code"] == "not_authorized"
    w.redemption.refresh_from_db()
    closing.refresh_from_db()
    assert (w.redemption.covered_total, closing.covered_total) == (Decimal("60.00"), 0)
    assert sorted(UsageRecord.objects.values_list("voucher_id", flat=True)) == [w.voucher.pk] * 2
    call_command("verify_ledger")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"record_id": "has space"}, "record_id"),
        ({"record_id": "x" * 65}, "record_id"),
        ({"started_at": "2026-11-02T08:00:00"}, "started_at"),
        ({"started_at": "0001-01-01T00:00:00+08:00"}, "started_at"),  # before year 1 in UTC
        ({"ended_at": "2026-11-02T07:00:00+08:00"}, "ended_at"),
        ({"quantity": "-1"}, "quantity"),
        ({"quantity": "0"}, "quantity"),
        ({"quantity": "1.0001"}, "quantity"),
        ({"amount": "-5.00"}, "amount"),
        ({"amount": "1.234"}, "amount"),
        ({"amount": 12.5, "domestic": "yes"}, "domestic"),
        ({"resource": ""}, "resource"),
        ({"resource": "Ascend\u0000910B"}, "resource"),  # found by schemathesis: was a 500
        ({"record_id": "nul"}, "voucher"),  # the voucher code gets a NUL character
        ({"colour": "blue"}, "record"),
    ],
)
def test_invalid_fields_reject_only_that_record(
    ledger_world, django_capture_on_commit_callbacks, overrides, field
):
    w = ledger_world
    records = [record(1, w.voucher.code, **overrides), record(2, w.voucher.code)]
    if overrides.get("record_id") == "nul":
        records[0]["voucher"] = "SH\u0000"
    body = results(w, push(w, records, django_capture_on_commit_callbacks))
    bad, good = body["results"]
    assert bad["status"] == "rejected"
    assert bad["error"]["code"] == "invalid"
    assert field in bad["error"]["message"]
    assert good["status"] == "accepted"
    assert UsageRecord.objects.count() == 1  # nothing of the bad record is stored


def test_unknown_voucher_and_other_citys_voucher_look_the_same(
    ledger_world, django_capture_on_commit_callbacks
):
    w = ledger_world
    body = results(
        w,
        push(
            w,
            [record(1, "SH-26-XXXX-XXXX"), record(2, w.other_voucher.code)],
            django_capture_on_commit_callbacks,
        ),
    )
    assert [r["error"]["code"] for r in body["results"]] == ["unknown_voucher", "unknown_voucher"]
    w.other_voucher.refresh_from_db()
    assert w.other_voucher.balance == Decimal("500.00")


def test_no_active_redemption_is_not_authorized(ledger_world, django_capture_on_commit_callbacks):
    w = ledger_world
    w.redemption.status = RedemptionStatus.CLOSED
    w.redemption.save()
    body = results(w, push(w, [record(1, w.voucher.code)], django_capture_on_commit_callbacks))
    assert body["results"][0]["error"]["code"] == "not_authorized"


@pytest.mark.parametrize("action", [voucher_suspend, voucher_revoke])
def test_suspended_or_revoked_voucher_is_inactive(
    ledger_world, django_capture_on_commit_callbacks, shanghai, action
):
    w = ledger_world
    action(voucher=w.voucher, actor=shanghai.manager, reason="审计发现问题")
    body = results(w, push(w, [record(1, w.voucher.code)], django_capture_on_commit_callbacks))
    assert body["results"][0]["error"]["code"] == "voucher_inactive"


@pytest.mark.parametrize(
    ("ended_at", "code"),
    [
        ("2026-10-31T23:59:59+08:00", "outside_validity"),  # before valid_from (1 Nov)
        ("2027-11-30T23:59:59+08:00", None),  # last grace day (valid until 31 Oct + 30)
        ("2027-12-01T00:00:01+08:00", "outside_validity"),
        # The ends themselves, at the city's offset (compared as text) and at others.
        ("2026-11-01T00:00:00+08:00", None),
        ("2026-10-31T16:00:00Z", None),
        ("2026-10-31T15:59:59.999999Z", "outside_validity"),
        ("2026-10-31T12:59:59-03:00", "outside_validity"),
        ("2027-12-01T00:00:00+08:00", None),
        ("2027-12-01T00:00:00.000001+08:00", "outside_validity"),
        ("2027-11-30T16:00:00+00:00", None),
        ("2027-11-30T16:00:01+00:00", "outside_validity"),
        ("2027-12-01T05:00:00+20:00", None),  # beyond what PostgreSQL holds: as UTC
    ],
)
def test_validity_with_grace_days(ledger_world, django_capture_on_commit_callbacks, ended_at, code):
    w = ledger_world
    started = (
        "2026-10-31T08:00:00+08:00" if ended_at.startswith("2026") else "2027-11-01T00:00:00+08:00"
    )
    # Reported after the usage ended (usage cannot end in the future).
    with time_machine.travel(datetime(2027, 12, 2, tzinfo=UTC), tick=False):
        body = results(
            w,
            push(
                w,
                [record(1, w.voucher.code, started_at=started, ended_at=ended_at)],
                django_capture_on_commit_callbacks,
            ),
        )
    result = body["results"][0]
    assert (result["error"] or {}).get("code") == code


def test_exactness_sum_of_covered_equals_the_ledger(
    ledger_world, django_capture_on_commit_callbacks
):
    w = ledger_world
    amounts = ["0.01", "0.05", "1.15", "2.35", "13.33", "0.07", "99.99", "45.45"]
    records = [
        record(i, w.voucher.code, amount=a, domestic=i % 2 == 0) for i, a in enumerate(amounts)
    ]
    body = results(w, push(w, records, django_capture_on_commit_callbacks))
    covered = sum(Decimal(r["covered_amount"]) for r in body["results"])
    charged = -sum(e.amount for e in LedgerEntry.objects.filter(voucher=w.voucher, kind="charge"))
    w.voucher.refresh_from_db()
    assert covered == charged == Decimal("1000.00") - w.voucher.balance
    call_command("verify_ledger")


def test_applying_a_batch_twice_charges_once(ledger_world, django_capture_on_commit_callbacks):
    from compute.ingest import usage_batch_apply

    w = ledger_world
    response = push(w, [record(1, w.voucher.code)], django_capture_on_commit_callbacks)
    batch_id = response.json()["id"]
    UsageBatch.objects.filter(pk=batch_id).update(status=BatchStatus.PROCESSING)  # as if re-run
    usage_batch_apply(batch_id=batch_id)
    assert LedgerEntry.objects.filter(kind=EntryKind.CHARGE).count() == 1
    w.voucher.refresh_from_db()
    assert w.voucher.balance == Decimal("970.00")


def test_void_returns_the_amount_through_a_reversal(
    ledger_world, django_capture_on_commit_callbacks
):
    w = ledger_world
    results(w, push(w, [record(1, w.voucher.code)], django_capture_on_commit_callbacks))
    url = "/api/v1/usage/records/dc-2026-11-000001/void"
    response = w.api.post(url, {"reason": "重复计费"}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "void"
    w.voucher.refresh_from_db()
    assert w.voucher.balance == Decimal("1000.00")
    assert LedgerEntry.objects.filter(kind=EntryKind.REVERSAL).get().amount == Decimal("30.00")
    again = w.api.post(url, {"reason": "again"}, format="json")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"
    # Another data center cannot void it (404, not 403).
    assert w.other_api.post(url, {"reason": "x"}, format="json").status_code == 404
    call_command("verify_ledger")
