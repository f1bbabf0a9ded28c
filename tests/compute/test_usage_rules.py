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
from vouchers.ledger import voucher_revoke, voucher_suspend
from vouchers.models import EntryKind, LedgerEntry

pytestmark = pytest.mark.usefixtures("eager_tasks")

BATCHES = "/api/v1/usage/batches"


def push(w, records, django_capture_on_commit_callbacks, api=None, **headers):
    with django_capture_on_commit_callbacks(execute=True):
        response = (api or w.api).post(BATCHES, {"records": records}, format="json", **headers)
    return response


def results(w, response, api=None):
    body = (api or w.api).get(f"{BATCHES}/{response.json()['id']}").json()
    assert body["status"] == "done"
    return body


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


def push_raw(w, body: bytes, django_capture_on_commit_callbacks):
    """A body exactly as a client wrote it (numbers, escapes, whitespace)."""
    with django_capture_on_commit_callbacks(execute=True):
        return w.api.post(BATCHES, data=body, content_type="application/json")


def raw_record(n: int, voucher: str, **fields: str) -> str:
    """One record as JSON text; `fields` are JSON fragments written as they are."""
    values = {
        "record_id": f'"dc-2026-11-{n:06d}"',
        "voucher": f'"{voucher}"',
        "started_at": '"2026-11-02T08:00:00+08:00"',
        "ended_at": '"2026-11-02T20:00:00+08:00"',
        "resource": '"Ascend 910B"',
        "domestic": "true",
        "quantity": '"96.000"',
        "amount": '"100.00"',
        **fields,
    }
    return "{" + ", ".join(f'"{k}": {v}' for k, v in values.items()) + "}"


def test_numbers_are_read_with_their_exact_digits(ledger_world, django_capture_on_commit_callbacks):
    # A float would read 100.000000000000001 as 100.0 and accept it; the contract allows
    # at most two decimals, so the record is invalid. Numbers that fit are exact.
    w = ledger_world
    body = (
        '{"records": ['
        + raw_record(1, w.voucher.code, amount="100.000000000000001")
        + ", "
        + raw_record(2, w.voucher.code, amount="100.5", quantity="12.25")
        + "]}"
    )
    response = push_raw(w, body.encode(), django_capture_on_commit_callbacks)
    assert response.status_code == 202
    bad, good = results(w, response)["results"]
    assert (bad["status"], bad["error"]["code"]) == ("rejected", "invalid")
    assert "amount" in bad["error"]["message"]
    assert (good["status"], good["covered_amount"]) == ("accepted", "30.15")  # 100.50 x 0.30
    stored = UsageRecord.objects.get()
    assert (stored.amount, stored.quantity) == (Decimal("100.50"), Decimal("12.250"))


def test_strings_postgresql_cannot_hold_are_a_per_record_rejection(
    ledger_world, django_capture_on_commit_callbacks
):
    # An unpaired surrogate is valid JSON text but no valid string: the record carrying
    # it is rejected, the rest of the batch is applied, and its id is echoed readably.
    w = ledger_world
    body = (
        '{"records": ['
        + raw_record(1, w.voucher.code, resource='"Ascend \\ud800"')
        + ", "
        + raw_record(2, w.voucher.code, record_id='"tab\\there\\u0000"')
        + ", "
        + raw_record(3, w.voucher.code, resource='"H20 \\\\ PCIe"')
        + "]}"
    )
    response = push_raw(w, body.encode(), django_capture_on_commit_callbacks)
    assert response.status_code == 202
    surrogate, control, backslash = results(w, response)["results"]
    assert (surrogate["status"], surrogate["error"]["code"]) == ("rejected", "invalid")
    assert "resource" in surrogate["error"]["message"]
    assert control["record_id"] == "tab\there\ufffd"
    assert (control["status"], control["error"]["code"]) == ("rejected", "invalid")
    assert backslash["status"] == "accepted"
    assert UsageRecord.objects.get().resource == "H20 \\ PCIe"


def test_idempotency_compares_the_body_byte_for_byte(
    ledger_world, django_capture_on_commit_callbacks
):
    w = ledger_world
    body = '{"records": [' + raw_record(1, w.voucher.code) + "]}"
    key = {"HTTP_IDEMPOTENCY_KEY": "nightly-1"}
    with django_capture_on_commit_callbacks(execute=True):
        first = w.api.post(BATCHES, data=body.encode(), content_type="application/json", **key)
        again = w.api.post(BATCHES, data=body.encode(), content_type="application/json", **key)
        other = w.api.post(
            BATCHES, data=body.replace(": ", ":").encode(), content_type="application/json", **key
        )
    assert (first.status_code, again.status_code, other.status_code) == (202, 200, 409)
    assert first.json()["id"] == again.json()["id"]
    assert UsageBatch.objects.count() == 1


def test_an_offset_postgresql_cannot_hold_is_still_a_valid_timestamp(
    ledger_world, django_capture_on_commit_callbacks
):
    # RFC 3339 allows +20:00; PostgreSQL refuses offsets beyond ±15:59, so records are
    # staged in UTC (this once stopped the whole batch in the worker).
    w = ledger_world
    late = record(1, w.voucher.code, ended_at="2026-11-03T08:00:00+20:00")
    body = results(w, push(w, [late], django_capture_on_commit_callbacks))
    assert body["results"][0]["status"] == "accepted"
    stored = UsageRecord.objects.get()
    assert stored.ended_at.isoformat() == "2026-11-02T12:00:00+00:00"


VARIANTS = [
    {},
    {"started_at": "2026-11-02T00:00:00Z", "ended_at": "2026-11-02T12:00:00.5Z"},
    {"ended_at": "2026-11-02T12:00:00.123456-15:59"},
    {"ended_at": "2026-11-02T20:00:00+16:00"},  # beyond PostgreSQL: converted to UTC
    {"ended_at": "2026-11-02 20:00:00+08:00"},
    {"ended_at": "2026-11-02T08:00:00+08:00"},  # the same instant as started_at
    {"ended_at": "2026-11-02T07:59:59+08:00"},
    {"started_at": "2026-11-02T09:00:00+09:00", "ended_at": "2026-11-02T08:30:00+08:00"},
    {"started_at": "2026-11-02T08:00:00+09:00", "ended_at": "2026-11-02T08:00:00+08:00"},
    {"started_at": "2026-11-02T08:00:00.5+08:00", "ended_at": "2026-11-02T08:00:00.50+08:00"},
    {"started_at": "2026-11-02T08:00:00.5+08:00", "ended_at": "2026-11-02T08:00:00.6+08:00"},
    {"ended_at": "2026-02-30T20:00:00+08:00"},
    {"started_at": "0001-01-01T00:00:00+00:00"},
    {"ended_at": "9999-12-31T23:00:00+00:00"},
    {"quantity": "0.001"},
    {"quantity": "0.000"},
    {"quantity": "00"},
    {"quantity": 96},
    {"quantity": "1e3"},
    {"amount": "0"},
    {"amount": "0.10"},
    {"amount": "1234567890123"},
    {"record_id": "a\nb"},
    {"record_id": "x" * 64},
    {"record_id": "ü"},
    {"voucher": ""},
    {"voucher": "V" * 25},
    {"voucher": "SH 26"},
    {"resource": "华为 昇腾 910B"},
    {"resource": "   "},
    {"resource": "a\\b"},
    {"resource": "a\tb"},
    {"domestic": 1},
    {"extra": 1},
]


@pytest.mark.parametrize("overrides", VARIANTS)
def test_checking_all_records_at_once_agrees_with_one_by_one(overrides):
    """The common case is checked field by field over the whole batch; whatever it
    accepts, the record-by-record checks accept alike (and it leaves the rest to them)."""
    from compute.ingest.check import _stage_common, _stage_each

    records = [record(1, "SH-26-AAAA-AAAA"), {**record(2, "SH-26-BBBB-BBBB"), **overrides}]
    each = _stage_each(records)
    common = _stage_common(records)
    if common is not None:
        assert not each.settled  # nothing the one-by-one checks reject
        assert common == each
    else:
        assert overrides  # the plain record is the common case


def test_a_batch_of_common_records_with_a_repeated_record_id_is_checked_one_by_one():
    from compute.ingest.check import Repeat, _stage_common
    from compute.ingest.check import stage as _stage

    records = [record(1, "SH-26-AAAA-AAAA"), record(1, "SH-26-AAAA-AAAA")]
    assert _stage_common(records) is None
    assert _stage(records, timezone.now()).settled == {1: Repeat(first=0, same=True)}


def test_results_of_an_all_accepted_batch_read_as_those_of_any_other():
    """All accepted is written out by a shortcut; it must say what the general path says."""
    import json

    from compute.ingest.check import stage as _stage
    from compute.ingest.plan import Outcome, Plan
    from compute.ingest.results import results as _results

    shares = [Decimal("0.00"), Decimal("0.01"), Decimal("1234567.89")]
    records = [record(n, "SH-26-AAAA-AAAA") for n in range(1, 5)]
    staged = _stage(records, timezone.now())
    accepted = [Plan(Outcome.ACCEPTED, share, 1, 1) for share in shares]
    short, *counts = _results(_stage(records[:3], timezone.now()), accepted)
    general, *_ = _results(staged, [*accepted, Plan(Outcome.UNKNOWN_VOUCHER)])
    assert counts == [3, 0, 0]
    assert json.loads(short) == json.loads(general)[:3]
    assert short[1:-1] in general
    assert [r["covered_amount"] for r in json.loads(short)] == ["0.00", "0.01", "1234567.89"]


def test_batch_bodies_are_compressed_with_lz4_where_the_server_has_it(
    ledger_world, django_capture_on_commit_callbacks
):
    """Migration 0011: a stored body and its results are LZ4-compressed on a server built
    with LZ4, and stored uncompressed (not pglz, which cost more) on one without."""
    from django.db import connection

    w = ledger_world
    records = [record(n, w.voucher.code, amount="0.01") for n in range(400)]
    response = push(w, records, django_capture_on_commit_callbacks)
    assert results(w, response)["counts"]["accepted"] == 400
    with connection.cursor() as cursor:
        # Whether this server was built with LZ4, asked independently of the migration.
        cursor.execute(
            "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
        )
        (has_lz4,) = cursor.fetchone()
        cursor.execute(
            "SELECT pg_column_compression(body), pg_column_size(body), octet_length(body),"
            " pg_column_compression(results_json), pg_column_size(results_json),"
            " octet_length(results_json)"
            " FROM compute_usagebatch WHERE id = %s",
            [response.json()["id"]],
        )
        body_method, body_stored, body_length, results_method, results_stored, results_length = (
            cursor.fetchone()
        )
    assert body_length > 50_000 and results_length > 20_000  # well past the TOAST threshold
    if has_lz4:
        assert (body_method, results_method) == ("lz4", "lz4")
        assert body_stored < body_length / 4 and results_stored < results_length / 4
    else:
        assert (body_method, results_method) == (None, None)
        assert body_stored >= body_length and results_stored >= results_length
