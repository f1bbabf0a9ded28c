"""Monthly settlements: totals from the ledger, issued statements frozen, adjustments."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from compute.models import Settlement, UsageRecord
from compute.settlements import (
    settlement_build,
    settlement_confirm,
    settlement_issue,
    settlement_mark_paid,
    settlements_build_month,
)
from compute.statements import statement_csv, statement_pdf
from portal.errors import DomainError
from tests.compute.conftest import record
from vouchers.models import EntryKind, LedgerEntry

pytestmark = pytest.mark.usefixtures("eager_tasks")
NOV, DEC = date(2026, 11, 1), date(2026, 12, 1)


def push(w, records, capture):
    with capture(execute=True):
        w.api.post("/api/v1/usage/batches", {"records": records}, format="json")


@pytest.fixture
def november(ledger_world, django_capture_on_commit_callbacks):
    w = ledger_world
    records = [record(i, w.voucher.code, amount=f"{100 + i}.00") for i in range(5)]
    # One ends in the first minute of December (Shanghai): next month's statement.
    records.append(
        record(
            9,
            w.voucher.code,
            started_at="2026-11-30T20:00:00+08:00",
            ended_at="2026-12-01T00:00:30+08:00",
        )
    )
    push(w, records, django_capture_on_commit_callbacks)
    return w


def test_totals_equal_the_ledgers_charges_for_the_month(november, shanghai):
    w = november
    s = settlement_build(city=shanghai.city, data_center=w.dc, period=NOV)
    assert s.records == 5
    ids = list(s.lines.values_list("usage_record_id", flat=True))
    charged = -sum(
        LedgerEntry.objects.filter(kind=EntryKind.CHARGE, usage_record_id__in=ids).values_list(
            "amount", flat=True
        )
    )
    assert s.covered_total == charged == Decimal("153.00")  # (100+…+104) x 0.30
    assert s.amount_total == Decimal("510.00")
    dec = settlement_build(city=shanghai.city, data_center=w.dc, period=DEC)
    assert dec.records == 1


def test_a_void_after_issue_becomes_next_months_adjustment(november, shanghai):
    w = november
    s = settlement_build(city=shanghai.city, data_center=w.dc, period=NOV)
    settlement_issue(settlement=s, actor=shanghai.manager)
    w.api.post("/api/v1/usage/records/dc-2026-11-000002/void", {"reason": "重复"}, format="json")
    with pytest.raises(DomainError):
        settlement_build(city=shanghai.city, data_center=w.dc, period=NOV)  # issued: frozen
    s.refresh_from_db()
    assert (s.records, s.covered_total) == (5, Decimal("153.00"))
    dec = settlement_build(city=shanghai.city, data_center=w.dc, period=DEC)
    adjustment = dec.lines.get(kind="adjustment")
    assert (adjustment.record_id, adjustment.covered_amount) == (
        "dc-2026-11-000002",
        Decimal("-30.60"),
    )
    # Rebuilding the draft does not add the adjustment twice.
    dec = settlement_build(city=shanghai.city, data_center=w.dc, period=DEC)
    assert dec.lines.filter(kind="adjustment").count() == 1


def test_a_void_before_issue_drops_out_on_rebuild(november, shanghai):
    w = november
    settlement_build(city=shanghai.city, data_center=w.dc, period=NOV)
    w.api.post("/api/v1/usage/records/dc-2026-11-000002/void", {"reason": "重复"}, format="json")
    s = settlement_build(city=shanghai.city, data_center=w.dc, period=NOV)
    assert s.records == 4
    assert not s.lines.filter(record_id="dc-2026-11-000002").exists()


def test_the_state_machine_and_roles(november, shanghai, shenzhen):
    w = november
    s = settlement_build(city=shanghai.city, data_center=w.dc, period=NOV)
    with pytest.raises(DomainError):
        settlement_confirm(settlement=s, data_center=w.dc)  # not issued yet
    with pytest.raises(DomainError):
        settlement_issue(settlement=s, actor=shanghai.reviewer)
    with pytest.raises(DomainError):
        settlement_issue(settlement=s, actor=shenzhen.manager)
    s = settlement_issue(settlement=s, actor=shanghai.manager)
    with pytest.raises(DomainError):
        settlement_issue(settlement=s, actor=shanghai.manager)
    with pytest.raises(DomainError):
        settlement_mark_paid(settlement=s, actor=shanghai.manager, payment_ref="X")  # not confirmed
    with pytest.raises(DomainError):
        settlement_confirm(settlement=s, data_center=w.other_dc)
    s = settlement_confirm(settlement=s, data_center=w.dc)
    with pytest.raises(DomainError):
        settlement_mark_paid(settlement=s, actor=shanghai.manager, payment_ref=" ")
    s = settlement_mark_paid(settlement=s, actor=shanghai.manager, payment_ref="BANK-2026-12-01")
    assert s.status == "paid"


def test_csv_and_pdf(november, shanghai):
    s = settlement_build(city=shanghai.city, data_center=november.dc, period=NOV)
    text = statement_csv(s).decode("utf-8-sig")
    assert "dc-2026-11-000001" in text
    assert text.strip().splitlines()[-1].split(",")[-1] == "153.00"
    pdf = statement_pdf(s)
    assert pdf.startswith(b"%PDF")
    assert len(pdf) > 1000


def test_api_lists_only_the_callers_statements(november, shanghai):
    w = november
    s = settlement_build(city=shanghai.city, data_center=w.dc, period=NOV)
    assert w.api.get("/api/v1/settlements").json()["results"] == []  # a draft is the city's
    assert w.api.get(f"/api/v1/settlements/{s.pk}").status_code == 404
    settlement_issue(settlement=s, actor=shanghai.manager)
    body = w.api.get("/api/v1/settlements?period=2026-11").json()
    assert body["results"] == [
        {
            "id": s.pk,
            "city": "shanghai",
            "period": "2026-11",
            "status": "issued",
            "records": 5,
            "amount_total": "510.00",
            "covered_total": "153.00",
        }
    ]
    detail = w.api.get(f"/api/v1/settlements/{s.pk}").json()
    assert len(detail["lines"]) == 5
    assert detail["lines"][0]["voucher"] == w.voucher.code
    assert w.other_api.get(f"/api/v1/settlements/{s.pk}").status_code == 404
    assert w.api.get("/api/v1/settlements?period=2026-13").status_code == 400


def test_screens_and_downloads(
    client, november, shanghai, shenzhen, operator, django_assert_max_num_queries
):
    client.force_login(shanghai.manager)
    client.post("/shanghai/staff/settlements/", {"period": "2026-11"})
    s = Settlement.objects.get(period=NOV)
    with django_assert_max_num_queries(12):
        assert client.get("/shanghai/staff/settlements/").status_code == 200
    client.post(f"/shanghai/staff/settlements/{s.pk}/", {"step": "issue"})
    s.refresh_from_db()
    assert s.status == "issued"
    assert client.get(f"/shanghai/staff/settlements/{s.pk}/csv/")["Content-Type"].startswith(
        "text/csv"
    )
    client.force_login(operator)
    assert client.get(f"/dc/guian/settlements/{s.pk}/pdf/")["Content-Type"] == "application/pdf"
    client.post(f"/dc/guian/settlements/{s.pk}/", {"step": "confirm"})
    s.refresh_from_db()
    assert s.status == "confirmed"
    client.force_login(shenzhen.manager)
    assert client.get(f"/shanghai/staff/settlements/{s.pk}/").status_code == 404
    assert client.get("/shanghai/staff/settlements/").status_code == 404


def test_monthly_task_builds_drafts_for_every_registration(november, shanghai):
    built = settlements_build_month(period=NOV)
    assert {(x.city.slug, x.data_center.slug) for x in built} == {
        ("shanghai", "guian"),
        ("shenzhen", "zhongwei"),
    }
    assert UsageRecord.objects.count() == 6
