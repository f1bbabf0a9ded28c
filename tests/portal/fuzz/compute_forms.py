"""The forms of vouchers, redemptions, data centers and settlements (tests/compute's
world)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import strategies as st

from compute.models import ApiKey, Registration
from compute.services import redemption_request
from compute.settlements import settlement_build, settlement_issue
from tests.factories import DataCenterFactory
from tests.portal.fuzz.catalogue import Form, Step, fixture, form
from tests.portal.fuzz.values import (
    OMIT,
    Field,
    boolean,
    choice,
    day,
    ids,
    nasty_id,
    nasty_number,
    nasty_text,
    number,
    text,
)
from vouchers.ledger import voucher_issue

# --- vouchers, redemptions, data centers and settlements (tests/compute's world) ----------


@form("voucher suspension, resumption and revocation")
def _(request):
    world, shanghai = fixture(request, "ledger_world"), fixture(request, "shanghai")
    code = world.voucher.code
    return Form(
        shanghai.manager,
        f"/shanghai/staff/vouchers/{code}/{{action}}/",
        {"reason": text("合同纠纷")},
        path_fields={"action": Field(st.sampled_from(["suspend", "resume", "revoke"]), nasty_text)},
        then=[
            Step(shanghai.manager, f"/shanghai/staff/vouchers/{code}/"),
            Step(fixture(request, "startup_user"), f"/my/vouchers/{code}/"),
        ],
    )


@form("voucher search")
def _(request):
    world, shanghai = fixture(request, "ledger_world"), fixture(request, "shanghai")
    return Form(
        shanghai.reviewer,
        "/shanghai/staff/vouchers/",
        {
            "q": text(world.voucher.code, "深度", "SH-26"),
            "status": choice("", "active", "revoked"),
            "page": number(1, 3),
        },
        method="get",
    )


@form("voucher page")
def _(request):
    world, shanghai = fixture(request, "ledger_world"), fixture(request, "shanghai")
    return Form(
        shanghai.reviewer,
        "/shanghai/staff/vouchers/{code}/",
        {"page": number(1, 3)},
        method="get",
        path_fields={"code": Field(st.just(world.voucher.code), nasty_text)},
    )


@form("redemption request")
def _(request):
    world, shanghai = fixture(request, "ledger_world"), fixture(request, "shanghai")
    other = DataCenterFactory(slug="fuzz-dc")
    other.programs.add(world.program)
    Registration.objects.create(city=shanghai.city, data_center=other, starts_on=date(2026, 1, 1))
    user = fixture(request, "startup_user")
    code = world.voucher.code
    return Form(
        user,
        f"/my/vouchers/{code}/",
        {
            "data_center": ids(other.pk, world.dc.pk, world.other_dc.pk),
            "contract_ref": text("GA-2026-002"),
            "amount_cap": Field(
                st.one_of(st.just(""), number(Decimal("0.01"), Decimal("1000.00"), places=2).valid),
                nasty_number,
            ),
            "page": Field(st.just(OMIT), nasty_number),
        },
        then=[Step(user, f"/my/vouchers/{code}/")],
    )


def requested_redemption(request: pytest.FixtureRequest):
    world, shanghai = fixture(request, "ledger_world"), fixture(request, "shanghai")
    voucher = voucher_issue(
        program=world.program,
        company=world.company,
        amount=Decimal("300.00"),
        actor=shanghai.approver,
        valid_from=date(2026, 11, 1),
    )
    return redemption_request(
        voucher=voucher,
        data_center=world.dc,
        contract_ref="GA-2026-009",
        actor=fixture(request, "startup_user"),
    )


@form("redemption cancellation and closing")
def _(request):
    world = fixture(request, "ledger_world")
    requested = requested_redemption(request)
    user = fixture(request, "startup_user")
    return Form(
        user,
        "/my/redemptions/{pk}/{action}/",
        {"reason": text("合同终止")},
        path_fields={
            "pk": Field(st.sampled_from([str(requested.pk), str(world.redemption.pk)]), nasty_id),
            "action": Field(st.sampled_from(["cancel", "close"]), nasty_text),
        },
        then=[Step(user, f"/my/vouchers/{world.voucher.code}/")],
    )


@form("redemption acceptance and rejection")
def _(request):
    requested = requested_redemption(request)
    operator = fixture(request, "operator")
    return Form(
        operator,
        f"/dc/guian/redemptions/{requested.pk}/{{action}}/",
        {"contract_ref": text("GA-2026-009-A", ""), "reason": text("无此合同")},
        path_fields={"action": Field(st.sampled_from(["accept", "reject"]), nasty_text)},
        then=[
            Step(operator, "/dc/guian/redemptions/"),
            Step(fixture(request, "startup_user"), f"/my/vouchers/{requested.voucher.code}/"),
        ],
    )


@form("API key issue")
def _(request):
    operator = fixture(request, "operator")
    return Form(
        operator,
        "/dc/guian/keys/",
        {"name": text("billing 2026", "")},
        then=[Step(operator, "/dc/guian/"), Step(operator, "/dc/guian/keys/")],
    )


@form("API key revocation")
def _(request):
    world, operator = fixture(request, "ledger_world"), fixture(request, "operator")
    key = ApiKey.objects.filter(data_center=world.dc).get()
    return Form(
        operator,
        "/dc/guian/keys/{pk}/revoke/",
        {"reason": text("轮换")},
        path_fields={"pk": Field(st.just(str(key.pk)), nasty_id)},
        then=[Step(operator, "/dc/guian/keys/")],
    )


@form("console filters")
def _(request):
    fixture(request, "ledger_world")
    return Form(
        fixture(request, "operator"),
        "/dc/guian/{page}/",
        {
            "status": choice("", "requested", "active", "issued"),
            "rejected": choice("1", "0"),
            "failed": choice("1", "0"),
            "period": text("2026-11", ""),
            "data_center": text("guian", ""),
            "page": number(1, 3),
        },
        method="get",
        path_fields={
            "page": Field(
                st.sampled_from(["redemptions", "batches", "settlements", "sync", "keys"]),
                nasty_text,
            )
        },
    )


def issued_settlement(request: pytest.FixtureRequest, *, issue: bool):
    world, shanghai = fixture(request, "ledger_world"), fixture(request, "shanghai")
    settlement = settlement_build(
        city=shanghai.city, data_center=world.dc, period=date(2026, 11, 1)
    )
    if issue:
        settlement = settlement_issue(settlement=settlement, actor=shanghai.manager)
    return settlement


@form("settlement filters")
def _(request):
    issued_settlement(request, issue=True)
    return Form(
        fixture(request, "shanghai").auditor,
        "/shanghai/staff/settlements/",
        {
            "period": text("2026-11", ""),
            "status": choice("", "draft", "issued", "paid"),
            "data_center": text("guian", ""),
            "page": number(1, 3),
        },
        method="get",
    )


@form("settlement drafts")
def _(request):
    fixture(request, "ledger_world")
    manager = fixture(request, "shanghai").manager
    return Form(
        manager,
        "/shanghai/staff/settlements/",
        {"period": text("2026-11", "2026-10")},
        then=[Step(manager, "/shanghai/staff/settlements/")],
    )


@form("settlement steps")
def _(request):
    manager = fixture(request, "shanghai").manager
    draft = issued_settlement(request, issue=False)
    base = f"/shanghai/staff/settlements/{draft.pk}/"
    return Form(
        manager,
        base,
        {"step": choice("issue", "mark_paid", "rebuild"), "payment_ref": text("BANK-2026-11")},
        then=[
            Step(manager, base),
            Step(manager, base + "csv/"),
            Step(manager, base + "pdf/"),
            Step(manager, base, {"step": "mark_paid", "payment_ref": "BANK-1"}),
        ],
    )


@form("settlement confirmation")
def _(request):
    settlement = issued_settlement(request, issue=True)
    operator = fixture(request, "operator")
    return Form(
        operator,
        f"/dc/guian/settlements/{settlement.pk}/",
        {"step": choice("confirm")},
        then=[Step(operator, f"/dc/guian/settlements/{settlement.pk}/")],
    )


@form("data-center registration")
def _(request):
    world, shanghai = fixture(request, "ledger_world"), fixture(request, "shanghai")
    return Form(
        shanghai.manager,
        "/shanghai/staff/data-centers/",
        {
            "data_center": ids(world.dc.pk, world.other_dc.pk),
            "status": choice("active", "suspended", "ended"),
        },
        then=[
            Step(shanghai.manager, "/shanghai/staff/data-centers/"),
            Step(shanghai.manager, "/shanghai/staff/sync/"),
        ],
    )


# --- integrity: inventory, related parties, bands and rules, findings (issue #19) --------


@form("data center inventory")
def _(request):
    world = fixture(request, "ledger_world")
    registration = Registration.objects.get(data_center=world.dc)
    return Form(
        fixture(request, "operator"),
        f"/dc/{world.dc.slug}/inventory/",
        {
            "registration": ids(registration.pk),
            "accelerator": text("Ascend 910B", "NVIDIA H20"),
            "cards": number(0, 10_000_000),
            "valid_from": day("2026-11-01"),
        },
        then=[Step(fixture(request, "operator"), f"/dc/{world.dc.slug}/inventory/")],
    )


@form("data center related party")
def _(request):
    world = fixture(request, "ledger_world")
    return Form(
        fixture(request, "operator"),
        f"/dc/{world.dc.slug}/inventory/",
        {
            "party-name": text("张三"),
            "party-code": text("91440300708461136T", "110101199003070011"),
        },
        fixed={"kind": "party"},
        then=[Step(fixture(request, "operator"), f"/dc/{world.dc.slug}/inventory/")],
    )


@form("company related party")
def _(request):
    world = fixture(request, "ledger_world")
    user, url = fixture(request, "startup_user"), f"/company/{world.company.pk}/parties/"
    return Form(
        user,
        url,
        {
            "name": text("张三", "深度资本管理有限公司"),
            "code": text("91440300708461136T", "110101199003070011", "11010119900307001x"),
        },
        then=[Step(user, url)],
    )


@form("program price band and integrity rules")
def _(request):
    world, shanghai = fixture(request, "ledger_world"), fixture(request, "shanghai")
    url = f"/shanghai/staff/programs/{world.program.slug}/integrity/"
    return Form(
        shanghai.manager,
        url,
        {
            "kind": choice("band", "rules"),
            "band-accelerator": text("Ascend 910B"),
            "band-reference_price": number(0, 1000, places=2),
            "band-tolerance_percent": number(0, 100),
            "rules-check_plan": boolean(),
            "rules-plan_margin_percent": number(0, 100),
            "rules-hold_charges": boolean(),
            "rules-drain_factor": number(1, 10),
        },
        then=[Step(shanghai.manager, url)],
    )


@form("finding decision")
def _(request):
    from compute.integrity.models import FindingRule, Severity
    from compute.integrity.services import FindingDraft, findings_raise

    world, shanghai = fixture(request, "ledger_world"), fixture(request, "shanghai")
    (finding,) = findings_raise(
        [
            FindingDraft(
                city_id=shanghai.city.pk,
                data_center_id=world.dc.pk,
                rule=FindingRule.PRICE_BAND,
                severity=Severity.HIGH,
                key="fuzz",
                evidence={"unit_price": "99.00"},
            )
        ]
    )
    url = f"/shanghai/staff/findings/{finding.pk}/"
    return Form(
        shanghai.manager,
        url,
        {"decision": choice("confirm", "clear"), "reason": text("价格经核实")},
        then=[Step(shanghai.manager, url), Step(shanghai.manager, "/shanghai/staff/findings/")],
    )
