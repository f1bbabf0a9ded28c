"""Awards less than requested, and the company's acceptance step (issue #13 item 4):
the reservation, acceptance (the voucher issued then), decline and lapse (the amount
back to the budget), with the ledger's check clean after each."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from portal.errors import DomainError
from portal.models import AuditEvent
from tests.vouchers.conftest import complete_draft, program_values
from vouchers import services
from vouchers.jobs import awards_lapse_due
from vouchers.ledger import ledger_verify
from vouchers.models import Application, ApplicationState, EntryKind, Program, Voucher


@pytest.fixture(autouse=True)
def _english():
    from django.utils import translation

    with translation.override("en"):
        yield


pytestmark = pytest.mark.usefixtures("eager_celery")


@pytest.fixture
def accept_program(shanghai) -> Program:
    return services.program_save(
        city=shanghai.city,
        actor=shanghai.manager,
        values=program_values(slug="accept-2026", acceptance_days=14),
    )


def _recommended(program, company, user, world, amount="500000.00") -> Application:
    app = complete_draft(program, company, user, amount=amount)
    services.application_submit(application=app, actor=user)
    services.application_start_screening(application=app, actor=world.manager)
    services.application_pass_screening(application=app, actor=world.manager)
    app.refresh_from_db()
    assert app.state == ApplicationState.RECOMMENDED
    return app


def _budget(program: Program) -> tuple[Decimal, Decimal, Decimal]:
    program.refresh_from_db()
    return program.allocated, program.reserved, program.budget_remaining


def test_less_than_requested_needs_a_reason(sh_program, company, startup_user, shanghai):
    app = _recommended(sh_program, company, startup_user, shanghai)
    with pytest.raises(DomainError) as caught:
        services.application_approve(
            application=app, actor=shanghai.approver, amount=Decimal("300000")
        )
    assert caught.value.code == "invalid" and "reason" in caught.value.fields
    assert not Voucher.objects.exists()
    voucher = services.application_approve(
        application=app, actor=shanghai.approver, amount=Decimal("300000"), reason="Plan too big"
    )
    app.refresh_from_db()
    assert (app.state, app.awarded_amount, app.award_reason) == (
        "approved",
        Decimal("300000.00"),
        "Plan too big",
    )
    assert voucher.face_value == Decimal("300000.00")
    assert ledger_verify() == []


def test_award_below_the_programs_minimum_is_refused(sh_program, company, startup_user, shanghai):
    app = _recommended(sh_program, company, startup_user, shanghai)
    with pytest.raises(DomainError) as caught:
        services.application_approve(
            application=app, actor=shanghai.approver, amount=Decimal("99999.99"), reason="x"
        )
    assert caught.value.code == "invalid" and "amount" in caught.value.fields


def test_award_accepted_issues_the_voucher(accept_program, company, startup_user, shanghai):
    app = _recommended(accept_program, company, startup_user, shanghai)
    before = _budget(accept_program)
    result = services.application_approve(
        application=app, actor=shanghai.approver, amount=Decimal("300000"), reason="Scope cut"
    )
    assert result is None
    app.refresh_from_db()
    assert app.state == ApplicationState.AWARDED
    assert app.award_expires_at - app.decided_at == timedelta(days=14)
    assert not Voucher.objects.filter(application=app).exists()
    assert _budget(accept_program) == (
        before[0],
        Decimal("300000.00"),
        before[2] - Decimal("300000.00"),
    )
    assert ledger_verify() == []

    voucher = services.award_accept(application=app, actor=startup_user)
    app.refresh_from_db()
    assert app.state == ApplicationState.APPROVED
    assert voucher.application_id == app.pk and voucher.face_value == Decimal("300000.00")
    assert list(voucher.entries.values_list("kind", "amount")) == [
        (EntryKind.ISSUE, Decimal("300000.00"))
    ]
    allocated, reserved, remaining = _budget(accept_program)
    assert (allocated, reserved) == (before[0] + Decimal("300000.00"), Decimal("0.00"))
    assert remaining == before[2] - Decimal("300000.00")
    assert ledger_verify() == []
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"application.approve", "application.accept_award", "voucher.issue"} <= actions


def test_award_declined_returns_the_amount(accept_program, company, startup_user, shanghai):
    app = _recommended(accept_program, company, startup_user, shanghai)
    before = _budget(accept_program)
    services.application_approve(
        application=app, actor=shanghai.approver, amount=Decimal("300000"), reason="Scope cut"
    )
    services.award_decline(application=app, actor=startup_user)
    app.refresh_from_db()
    assert app.state == ApplicationState.DECLINED
    assert _budget(accept_program) == before
    assert not Voucher.objects.exists()
    assert ledger_verify() == []
    assert AuditEvent.objects.filter(action="application.decline_award").count() == 1
    # Declined is final: no acceptance afterwards.
    with pytest.raises(DomainError) as caught:
        services.award_accept(application=app, actor=startup_user)
    assert caught.value.code == "conflict"


def test_only_the_company_answers_an_award(accept_program, company, startup_user, shanghai):
    app = _recommended(accept_program, company, startup_user, shanghai)
    services.application_approve(
        application=app, actor=shanghai.approver, amount=app.requested_amount
    )
    for actor in (shanghai.approver, shanghai.manager):
        with pytest.raises(DomainError) as caught:
            services.award_accept(application=app, actor=actor)
        assert caught.value.code == "forbidden"
    app.refresh_from_db()
    assert app.state == ApplicationState.AWARDED


def test_award_lapses_after_the_window(accept_program, company, startup_user, shanghai):
    app = _recommended(accept_program, company, startup_user, shanghai)
    before = _budget(accept_program)
    services.application_approve(application=app, actor=shanghai.approver, amount=Decimal("500000"))
    app.refresh_from_db()
    # Within the window nothing lapses.
    assert awards_lapse_due() == []
    later = app.award_expires_at + timedelta(seconds=1)
    assert awards_lapse_due(now=later - timedelta(seconds=2)) == []
    Application.objects.filter(pk=app.pk).update(
        award_expires_at=timezone.now() - timedelta(minutes=1)
    )
    with pytest.raises(DomainError) as caught:
        services.award_accept(application=app, actor=startup_user)
    assert caught.value.code == "conflict"
    assert awards_lapse_due() == [app.pk]
    assert awards_lapse_due() == []  # once
    app.refresh_from_db()
    assert app.state == ApplicationState.LAPSED
    assert _budget(accept_program) == before
    assert ledger_verify() == []


def test_reserved_awards_count_against_the_budget(shanghai, company, startup_user):
    program = services.program_save(
        city=shanghai.city,
        actor=shanghai.manager,
        values=program_values(
            slug="small",
            budget=Decimal("600000"),
            award_max=Decimal("600000"),
            company_yearly_cap=None,
            acceptance_days=7,
        ),
    )
    first = _recommended(program, company, startup_user, shanghai)
    services.application_approve(
        application=first, actor=shanghai.approver, amount=Decimal("500000")
    )
    second = _recommended(program, company, startup_user, shanghai, amount="100000")
    with pytest.raises(DomainError) as caught:
        services.application_approve(
            application=second, actor=shanghai.approver, amount=Decimal("200000")
        )
    assert caught.value.code in ("conflict", "invalid")
    services.application_approve(
        application=second, actor=shanghai.approver, amount=Decimal("100000")
    )
    assert _budget(program)[1:] == (Decimal("600000.00"), Decimal("0.00"))
    assert ledger_verify() == []


def test_verify_ledger_names_a_reservation_without_its_award(accept_program):
    Program.objects.filter(pk=accept_program.pk).update(reserved=Decimal("1.00"))
    problems = ledger_verify()
    assert [p.reason for p in problems] == ["reserved differs from the awards awaiting acceptance"]


def test_company_accepts_on_its_pages_with_a_confirmation(
    client, accept_program, company, startup_user, shanghai
):
    app = _recommended(accept_program, company, startup_user, shanghai)
    services.application_approve(
        application=app, actor=shanghai.approver, amount=Decimal("300000"), reason="Scope cut"
    )
    client.force_login(startup_user)
    home = client.get(reverse("vouchers:company_home")).content.decode()
    assert "¥300,000.00" in home and reverse("vouchers:award", args=[app.pk, "accept"]) in home
    page = client.get(reverse("vouchers:application", args=[app.pk])).content.decode()
    assert "Scope cut" in page and reverse("vouchers:award", args=[app.pk, "decline"]) in page
    url = reverse("vouchers:award", args=[app.pk, "accept"])
    confirm = client.get(url)
    assert confirm.status_code == 200 and b'name="confirm"' in confirm.content
    # Without the confirmation nothing happens.
    client.post(url)
    app.refresh_from_db()
    assert app.state == ApplicationState.AWARDED
    client.post(url, {"confirm": "yes"})
    app.refresh_from_db()
    assert app.state == ApplicationState.APPROVED
    assert Voucher.objects.filter(application=app).exists()


def test_another_user_gets_404_on_the_award_pages(
    client, accept_program, company, startup_user, shanghai, outsider
):
    app = _recommended(accept_program, company, startup_user, shanghai)
    services.application_approve(
        application=app, actor=shanghai.approver, amount=app.requested_amount
    )
    client.force_login(outsider)
    for answer in ("accept", "decline"):
        url = reverse("vouchers:award", args=[app.pk, answer])
        assert client.get(url).status_code == 404
        assert client.post(url, {"confirm": "yes"}).status_code == 404
    app.refresh_from_db()
    assert app.state == ApplicationState.AWARDED


@pytest.mark.parametrize(("days", "ok"), [(0, True), (90, True), (91, False)])
def test_acceptance_days_are_bounded(shanghai, days, ok):
    values = program_values(slug=f"days-{days}", acceptance_days=days)
    if ok:
        program = services.program_save(city=shanghai.city, actor=shanghai.manager, values=values)
        assert program.acceptance_days == days
        return
    with pytest.raises(DomainError) as caught:
        services.program_save(city=shanghai.city, actor=shanghai.manager, values=values)
    assert "acceptance_days" in caught.value.fields
