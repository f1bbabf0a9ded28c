"""Integrity checks on usage (issue #19 item 1): each rule fires on a crafted case and
stays quiet on ordinary traffic; held charges are neither spendable nor settled until
released; a confirmed finding voids through the ledger; other cities and data centers
see none of it; the queue's query count is fixed."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from compute.integrity.models import (
    Finding,
    FindingRule,
    FindingStatus,
    IntegrityRules,
    Inventory,
    PriceBand,
    RelatedParty,
)
from compute.integrity.nightly import capacity_check, integrity_nightly
from compute.integrity.services import finding_clear, finding_confirm
from compute.models import RecordStatus, Registration, UsageRecord
from compute.settlements import settlement_build
from compute.webhooks.models import WebhookDelivery, WebhookEndpoint
from portal.errors import DomainError
from portal.models import AuditEvent
from tests.compute.conftest import record
from vouchers.ledger import ledger_verify
from vouchers.models import Application, ComputePlanRow, EntryKind, LedgerEntry, Voucher

pytestmark = pytest.mark.usefixtures("eager_tasks")
NOV = date(2026, 11, 1)


def push(w, records, capture):
    with capture(execute=True):
        response = w.api.post("/api/v1/usage/batches", {"records": records}, format="json")
    assert response.status_code == 202


def band(w, *, price="1.00", tolerance="20", hold=True, check_plan=False):
    """Ascend 910B at ¥1.00 ± 20% per card-hour; the fixture's records cost 100.00 for
    96 card-hours, ¥1.04: inside."""
    PriceBand.objects.create(
        program=w.program,
        accelerator="Ascend 910B",
        reference_price=Decimal(price),
        tolerance_percent=Decimal(tolerance),
    )
    IntegrityRules.objects.create(program=w.program, hold_charges=hold, check_plan=check_plan)


def with_plan(w, rows: list[tuple[str, str]]) -> None:
    app = Application.objects.create(
        city=w.program.city,
        program=w.program,
        company=w.company,
        created_by=w.company.members.first(),
        state="approved",
    )
    for accelerator, hours in rows:
        ComputePlanRow.objects.create(application=app, accelerator=accelerator, hours=hours)
    Voucher.objects.filter(pk=w.voucher.pk).update(application=app)


# --- price band, hold, release ---------------------------------------------------------


def test_a_price_outside_the_band_is_held_not_spendable_and_not_settled(
    ledger_world, shanghai, django_capture_on_commit_callbacks
):
    w = ledger_world
    band(w)
    push(
        w,
        [record(1, w.voucher.code), record(2, w.voucher.code, amount="300.00")],
        django_capture_on_commit_callbacks,
    )
    finding = Finding.objects.get()
    assert finding.rule == FindingRule.PRICE_BAND and finding.holds
    assert finding.city == shanghai.city and finding.data_center == w.dc
    held = UsageRecord.objects.get(record_id="dc-2026-11-000002")
    assert held.held and list(finding.records.all()) == [held]
    assert finding.evidence["records"][0]["unit_price"] == "3.13"
    # Charged, so not spendable: the balance already excludes it.
    w.voucher.refresh_from_db()
    assert w.voucher.balance == Decimal("1000.00") - Decimal("30.00") - Decimal("90.00")
    # Not settled while held.
    statement = settlement_build(city=shanghai.city, data_center=w.dc, period=NOV)
    assert statement.records == 1 and statement.covered_total == Decimal("30.00")
    assert AuditEvent.objects.filter(action="finding.raise").count() == 1

    finding_clear(finding=finding, actor=shanghai.manager, reason="priced per contract")
    held.refresh_from_db()
    assert not held.held
    statement = settlement_build(city=shanghai.city, data_center=w.dc, period=NOV)
    assert statement.records == 2 and statement.covered_total == Decimal("120.00")
    event = AuditEvent.objects.get(action="finding.clear")
    assert event.data["released"] == ["dc-2026-11-000002"]
    assert ledger_verify() == []


def test_prices_within_the_band_raise_nothing(ledger_world, django_capture_on_commit_callbacks):
    w = ledger_world
    band(w)
    records = [
        record(i, w.voucher.code, amount=f"{90 + i}.00", resource=r)
        for i, r in enumerate(["Ascend 910B", "Ascend 910B", "NVIDIA H800"])
    ]
    push(w, records, django_capture_on_commit_callbacks)
    assert not Finding.objects.exists()
    assert not UsageRecord.objects.filter(held=True).exists()


def test_without_hold_the_finding_is_raised_but_the_charge_is_settled(
    ledger_world, shanghai, django_capture_on_commit_callbacks
):
    w = ledger_world
    band(w, hold=False)
    push(w, [record(1, w.voucher.code, amount="10.00")], django_capture_on_commit_callbacks)
    finding = Finding.objects.get()
    assert not finding.holds
    assert settlement_build(city=shanghai.city, data_center=w.dc, period=NOV).records == 1


# --- plan ------------------------------------------------------------------------------


def test_plan_checks_flag_a_model_outside_the_plan_and_hours_beyond_it(
    ledger_world, django_capture_on_commit_callbacks
):
    w = ledger_world
    IntegrityRules.objects.create(program=w.program, plan_margin_percent=Decimal("10"))
    with_plan(w, [("Ascend 910B", "200.0")])
    push(w, [record(1, w.voucher.code)], django_capture_on_commit_callbacks)  # 96 of 220
    assert not Finding.objects.exists()
    push(
        w,
        [record(2, w.voucher.code), record(3, w.voucher.code, resource="NVIDIA H800")],
        django_capture_on_commit_callbacks,
    )
    rules = dict(Finding.objects.values_list("rule", "record_count"))
    assert rules == {FindingRule.PLAN_MODEL: 1, FindingRule.PLAN_HOURS: 2}
    hours = Finding.objects.get(rule=FindingRule.PLAN_HOURS)
    assert hours.evidence["card_hours"] == "288.000" and hours.evidence["plan"] == "200.0"
    assert not hours.holds  # the program does not hold


# --- confirm: voided through the ledger ------------------------------------------------


def test_confirming_voids_the_records_through_the_ledger(
    ledger_world, shanghai, django_capture_on_commit_callbacks
):
    w = ledger_world
    band(w)
    push(w, [record(1, w.voucher.code, amount="500.00")], django_capture_on_commit_callbacks)
    finding = Finding.objects.get()
    with pytest.raises(DomainError):
        finding_confirm(finding=finding, actor=shanghai.reviewer, reason="x")  # not a manager
    finding_confirm(finding=finding, actor=shanghai.manager, reason="billed hours never ran")
    rec = UsageRecord.objects.get()
    assert rec.status == RecordStatus.VOID and not rec.held
    assert LedgerEntry.objects.filter(kind=EntryKind.REVERSAL, usage_record_id=rec.pk).count() == 1
    w.voucher.refresh_from_db()
    assert w.voucher.balance == Decimal("1000.00")
    w.redemption.refresh_from_db()
    assert w.redemption.covered_total == 0
    assert ledger_verify() == []
    finding.refresh_from_db()
    assert finding.status == FindingStatus.CONFIRMED and finding.decided_by == shanghai.manager
    assert AuditEvent.objects.get(action="finding.confirm").data["voided"] == [rec.record_id]
    with pytest.raises(DomainError):  # decided once
        finding_clear(finding=finding, actor=shanghai.manager, reason="changed my mind")


# --- the queue: pages, isolation, query count ------------------------------------------


def test_the_queue_decides_and_other_cities_and_data_centers_get_404(
    ledger_world, shanghai, shenzhen, client, django_capture_on_commit_callbacks
):
    w = ledger_world
    band(w)
    push(w, [record(1, w.voucher.code, amount="500.00")], django_capture_on_commit_callbacks)
    finding = Finding.objects.get()
    url = f"/shanghai/staff/findings/{finding.pk}/"
    client.force_login(shenzhen.manager)
    assert client.get("/shanghai/staff/findings/").status_code == 404
    assert client.get(url).status_code == 404
    assert client.post(url, {"decision": "confirm", "reason": "x"}).status_code == 404
    assert client.get(f"/shenzhen/staff/findings/{finding.pk}/").status_code == 404
    from tests.factories import UserFactory

    other_ops = UserFactory(email="ops@zhongwei.test")
    w.other_dc.operators.add(other_ops)
    client.force_login(other_ops)
    assert client.get(f"/dc/{w.dc.slug}/findings/").status_code == 404
    page = client.get(f"/dc/{w.other_dc.slug}/findings/")
    assert page.status_code == 200 and f"F{finding.pk}" not in page.content.decode()
    finding.refresh_from_db()
    assert finding.status == FindingStatus.OPEN

    client.force_login(shanghai.auditor)  # may look, not decide
    assert client.get(url).status_code == 200
    assert client.post(url, {"decision": "confirm", "reason": "x"}).status_code == 403
    client.force_login(shanghai.manager)
    assert "500.00" in client.get(url).content.decode()
    response = client.post(url, {"decision": "clear", "reason": "contract price"})
    assert response.status_code == 302
    finding.refresh_from_db()
    assert finding.status == FindingStatus.CLEARED and finding.reason == "contract price"


def test_the_queue_takes_a_fixed_number_of_queries(
    ledger_world, shanghai, client, django_capture_on_commit_callbacks
):
    w = ledger_world
    band(w)
    client.force_login(shanghai.manager)

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/shanghai/staff/findings/?status=all").status_code == 200
        return len(ctx.captured_queries)

    push(w, [record(1, w.voucher.code, amount="500.00")], django_capture_on_commit_callbacks)
    one = count()
    for n in range(2, 6):
        push(w, [record(n, w.voucher.code, amount="500.00")], django_capture_on_commit_callbacks)
    assert Finding.objects.count() == 5
    assert count() == one


# --- webhook ---------------------------------------------------------------------------


def test_a_finding_on_a_data_centers_records_is_sent_to_its_webhook(
    ledger_world, django_capture_on_commit_callbacks
):
    w = ledger_world
    WebhookEndpoint.objects.create(
        data_center=w.dc, url="https://dc.example/hook", events=["finding.raised"], secret="s" * 64
    )
    band(w)
    push(w, [record(1, w.voucher.code, amount="500.00")], django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get(event="finding.raised")
    assert delivery.payload["data"]["record_ids"] == ["dc-2026-11-000001"]
    assert delivery.payload["data"]["held"] is True


# --- capacity (nightly) ----------------------------------------------------------------


def _declare(w, cards: int, accelerator: str = "Ascend 910B") -> None:
    registration = Registration.objects.get(data_center=w.dc, city=w.program.city)
    Inventory.objects.create(
        registration=registration, accelerator=accelerator, cards=cards, valid_from=NOV
    )


NOV_WINDOW = {"start": datetime(2026, 11, 1, tzinfo=UTC), "end": datetime(2026, 12, 1, tzinfo=UTC)}


def test_capacity_flags_hours_needing_more_cards_than_declared(
    ledger_world, django_capture_on_commit_callbacks
):
    w = ledger_world
    _declare(w, 10)
    # 96 card-hours over 12 hours: 8 cards each; two overlapping for 4 hours need 16.
    push(
        w,
        [
            record(1, w.voucher.code),
            record(
                2,
                w.voucher.code,
                started_at="2026-11-02T16:00:00+08:00",
                ended_at="2026-11-03T04:00:00+08:00",
            ),
        ],
        django_capture_on_commit_callbacks,
    )
    drafts = capacity_check(**NOV_WINDOW)
    assert len(drafts) == 1
    hours = drafts[0].evidence["hours"]
    assert [h["hour"] for h in hours] == [f"2026-11-02T{h:02d}:00:00+00:00" for h in (8, 9, 10, 11)]
    assert hours[0]["cards_used"] == "16.0" and hours[0]["cards_declared"] == 10
    assert len(drafts[0].record_ids) == 2
    assert integrity_nightly(now=datetime(2026, 11, 20, tzinfo=UTC)) == 1
    assert integrity_nightly(now=datetime(2026, 11, 20, tzinfo=UTC)) == 0  # raised once


def test_capacity_is_quiet_within_the_inventory_and_without_one(
    ledger_world, django_capture_on_commit_callbacks
):
    w = ledger_world
    push(
        w,
        [record(1, w.voucher.code), record(2, w.voucher.code)],
        django_capture_on_commit_callbacks,
    )
    assert capacity_check(**NOV_WINDOW) == []  # nothing declared: not checked
    _declare(w, 16)
    assert capacity_check(**NOV_WINDOW) == []
    _declare(w, 0, accelerator="NVIDIA H800")
    assert capacity_check(**NOV_WINDOW) == []


# --- patterns (nightly) ----------------------------------------------------------------


def _chain(w, capture, *, days: int, quantity: str = "8.000", step_minutes: int = 0):
    start = datetime(2026, 11, 2, tzinfo=UTC)
    records = []
    for n in range(days * 2):
        began = start + timedelta(hours=12 * n, minutes=step_minutes * n)
        records.append(
            record(
                100 + n,
                w.voucher.code,
                started_at=began.isoformat(),
                ended_at=(began + timedelta(hours=12)).isoformat(),
                quantity=quantity,
                amount="8.00",
            )
        )
    push(w, records, capture)


def test_records_back_to_back_around_the_clock_are_flagged(
    ledger_world, django_capture_on_commit_callbacks
):
    w = ledger_world
    _chain(w, django_capture_on_commit_callbacks, days=4)
    assert integrity_nightly(now=datetime(2026, 11, 20, tzinfo=UTC)) == 1
    finding = Finding.objects.get()
    assert finding.rule == FindingRule.AROUND_THE_CLOCK and finding.record_count == 8


def test_gaps_or_short_runs_are_not_around_the_clock(
    ledger_world, django_capture_on_commit_callbacks
):
    w = ledger_world
    _chain(w, django_capture_on_commit_callbacks, days=2)  # two days only
    assert integrity_nightly(now=datetime(2026, 11, 20, tzinfo=UTC)) == 0


def test_a_program_that_does_not_check_plans_has_no_fast_drain(
    ledger_world, django_capture_on_commit_callbacks
):
    """The demo's programs check no plans (its simulators bill any model, far beyond the
    seeded plans): its ordinary traffic raised a fast-drain finding on every planned
    voucher until the pace check, a plan check, followed `check_plan`."""
    w = ledger_world
    IntegrityRules.objects.create(program=w.program, check_plan=False, hold_charges=True)
    with_plan(w, [("Ascend 910B", "365.0")])
    push(
        w,
        [record(1, w.voucher.code), record(2, w.voucher.code)],
        django_capture_on_commit_callbacks,
    )
    assert integrity_nightly(now=datetime(2026, 11, 5, tzinfo=UTC)) == 0


def test_the_chain_thresholds_are_the_named_constants(
    ledger_world, django_capture_on_commit_callbacks, monkeypatch
):
    """The around-the-clock rule reads patterns.CHAIN_DAYS and CHAIN_MIN_RECORDS (the
    docs' table of thresholds), not values written into its SQL."""
    from compute.integrity import patterns

    w = ledger_world
    _chain(w, django_capture_on_commit_callbacks, days=2)  # 4 records over 2 days
    monkeypatch.setattr(patterns, "CHAIN_DAYS", 2)
    monkeypatch.setattr(patterns, "CHAIN_MIN_RECORDS", 5)
    assert integrity_nightly(now=datetime(2026, 11, 20, tzinfo=UTC)) == 0
    monkeypatch.setattr(patterns, "CHAIN_MIN_RECORDS", 4)
    assert integrity_nightly(now=datetime(2026, 11, 20, tzinfo=UTC)) == 1
    assert Finding.objects.get().rule == FindingRule.AROUND_THE_CLOCK


def test_a_voucher_drained_much_faster_than_its_plan_is_flagged(
    ledger_world, django_capture_on_commit_callbacks
):
    w = ledger_world
    IntegrityRules.objects.create(program=w.program, check_plan=True)
    # 365 card-hours planned over the year: a card-hour a day; 192 in a week is 27×.
    with_plan(w, [("Ascend 910B", "365.0")])
    push(
        w,
        [record(1, w.voucher.code), record(2, w.voucher.code)],
        django_capture_on_commit_callbacks,
    )
    assert integrity_nightly(now=datetime(2026, 11, 5, tzinfo=UTC)) == 1
    assert Finding.objects.get().rule == FindingRule.FAST_DRAIN
    # A week later the pace is history: nothing new.
    assert integrity_nightly(now=datetime(2026, 11, 12, tzinfo=UTC)) == 0


# --- related parties -------------------------------------------------------------------


def test_a_shared_shareholder_is_flagged_at_redemption(ledger_world, startup_user):
    from compute.services import redemption_request

    w = ledger_world
    w.redemption.status = "closed"
    w.redemption.save()
    RelatedParty.objects.create(company=w.company, name="张三", code="110101199001011234")
    RelatedParty.objects.create(data_center=w.dc, name="张三", code="110101199001011234")
    RelatedParty.objects.create(data_center=w.dc, name="李四", code="110101199202022345")
    redemption = redemption_request(
        voucher=w.voucher, data_center=w.dc, contract_ref="GA-2", actor=startup_user
    )
    finding = Finding.objects.get()
    assert finding.rule == FindingRule.RELATED_PARTY and finding.voucher == w.voucher
    assert finding.evidence["shared"] == [{"name": "张三", "company_side": "张三", "code": "…1234"}]
    assert finding.evidence["redemption"] == redemption.pk


def test_no_shared_party_no_finding(ledger_world, startup_user):
    from compute.services import redemption_request

    w = ledger_world
    w.redemption.status = "closed"
    w.redemption.save()
    RelatedParty.objects.create(company=w.company, name="张三", code="110101199001011234")
    RelatedParty.objects.create(data_center=w.dc, name="李四", code="110101199202022345")
    redemption_request(voucher=w.voucher, data_center=w.dc, contract_ref="GA-2", actor=startup_user)
    assert not Finding.objects.exists()


def test_a_program_manager_sets_the_bands_and_rules(ledger_world, shanghai, shenzhen, client):
    w = ledger_world
    url = f"/shanghai/staff/programs/{w.program.slug}/integrity/"
    client.force_login(shenzhen.manager)
    assert client.get(url).status_code == 404
    client.force_login(shanghai.reviewer)
    assert client.get(url).status_code == 403
    client.force_login(shanghai.manager)
    assert client.get(url).status_code == 200
    band = {
        "kind": "band",
        "band-accelerator": "Ascend 910B",
        "band-reference_price": "12.00",
        "band-tolerance_percent": "25",
    }
    assert client.post(url, band).status_code == 302
    band["band-reference_price"] = "13.00"  # set again: changed, not a second band
    assert client.post(url, band).status_code == 302
    assert PriceBand.objects.get(program=w.program).reference_price == Decimal("13.00")
    rules = {
        "kind": "rules",
        "rules-check_plan": "on",
        "rules-plan_margin_percent": "15",
        "rules-hold_charges": "on",
        "rules-drain_factor": "4",
    }
    assert client.post(url, rules).status_code == 302
    saved = IntegrityRules.objects.get(program=w.program)
    assert saved.hold_charges and saved.plan_margin_percent == Decimal("15")
    assert AuditEvent.objects.filter(action="integrity.price_band").count() == 2
    assert AuditEvent.objects.filter(action="integrity.rules").count() == 1
    bad = {**band, "band-tolerance_percent": "500"}
    assert client.post(url, bad).status_code == 200  # a field error, no 500
