"""Races on one application, with real threads on PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.concurrency import outcome_codes, race
from tests.conftest import _city_world
from tests.factories import UserFactory
from tests.vouchers.conftest import complete_draft, program_values
from vouchers import services
from vouchers.credit_code import credit_code_generate
from vouchers.models import Application, LedgerEntry, Program, Voucher


def _race(*steps) -> list[str]:
    return outcome_codes(race(*steps))


@pytest.mark.django_db(transaction=True)
def test_an_application_approved_twice_at_once_gets_one_voucher():
    import random

    sh = _city_world("shanghai", "SH", "上海市", "Shanghai")
    program = services.program_save(city=sh.city, actor=sh.manager, values=program_values())
    user = UserFactory(email="race@startup.test")
    company = services.company_create(
        actor=user, legal_name="竞速公司", credit_code=credit_code_generate(random.Random(11))
    )
    app = complete_draft(program, company, user, amount="300000")
    services.application_submit(application=app, actor=user)
    services.application_start_screening(application=app, actor=sh.reviewer)
    services.application_pass_screening(application=app, actor=sh.reviewer)

    def approve():
        services.application_approve(
            application=Application.objects.get(pk=app.pk),
            actor=sh.approver,
            amount=Decimal("300000"),
            reason="Scaled to the plan",
        )

    def reject():
        services.application_reject(
            application=Application.objects.get(pk=app.pk), actor=sh.approver, reason="重复"
        )

    assert _race(approve, approve, reject) == ["conflict", "conflict", "done"]
    app.refresh_from_db()
    vouchers = Voucher.objects.filter(company=company)
    if app.state == "approved":
        assert vouchers.count() == 1
        assert LedgerEntry.objects.filter(voucher__company=company).count() == 1
        assert Program.objects.get(pk=program.pk).allocated == Decimal("300000.00")
    else:
        assert app.state == "rejected"
        assert not vouchers.exists()
        assert Program.objects.get(pk=program.pk).allocated == Decimal("0.00")


def _recommended(program, company, user, sh, amount):
    app = complete_draft(program, company, user, amount=amount)
    services.application_submit(application=app, actor=user)
    services.application_start_screening(application=app, actor=sh.reviewer)
    services.application_pass_screening(application=app, actor=sh.reviewer)
    return app


@pytest.mark.django_db(transaction=True)
def test_concurrent_approvals_in_two_programs_keep_the_company_within_its_yearly_cap():
    import random

    sh = _city_world("shanghai", "SH", "上海市", "Shanghai")
    programs = [
        services.program_save(
            city=sh.city,
            actor=sh.manager,
            values=program_values(slug=slug, company_yearly_cap=Decimal("3000000")),
        )
        for slug in ("compute-a", "compute-b")
    ]
    user = UserFactory(email="cap@startup.test")
    company = services.company_create(
        actor=user, legal_name="封顶公司", credit_code=credit_code_generate(random.Random(12))
    )
    apps = [_recommended(p, company, user, sh, "2000000") for p in programs]

    def approver(app):
        return lambda: services.application_approve(
            application=Application.objects.get(pk=app.pk),
            actor=sh.approver,
            amount=Decimal("2000000"),
            reason="Scaled to the plan",
        )

    assert _race(*(approver(a) for a in apps)) == ["done", "invalid"]
    assert Voucher.objects.filter(company=company).count() == 1
