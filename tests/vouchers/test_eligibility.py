"""Each rule of the eligibility catalogue, and what a hard failure does."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from portal.audit import SYSTEM
from tests.vouchers.conftest import complete_draft
from vouchers import eligibility, services
from vouchers.ledger import voucher_issue
from vouchers.models import Company, Program


def outcome(app, rule: dict) -> eligibility.Outcome:
    Program.objects.filter(pk=app.program_id).update(eligibility_rules=[rule])
    app.program.refresh_from_db()
    (result,) = eligibility.evaluate(app)
    assert result.message_zh and result.message_en
    return result


@pytest.fixture
def app(sh_program, company, startup_user):
    app = complete_draft(sh_program, company, startup_user)
    app.refresh_from_db()
    return app


def test_registered_in_city(app, shenzhen):
    assert outcome(app, {"type": "registered_in_city"}).outcome == "pass"
    Company.objects.filter(pk=app.company_id).update(registered_city=shenzhen.city)
    app.company.refresh_from_db()
    assert outcome(app, {"type": "registered_in_city"}).outcome == "fail"


def test_founded_within_years(app):
    assert outcome(app, {"type": "founded_within_years", "years": 5}).outcome == "pass"
    Company.objects.filter(pk=app.company_id).update(founded_on=date(2010, 1, 1))
    app.company.refresh_from_db()
    assert outcome(app, {"type": "founded_within_years", "years": 5}).outcome == "fail"
    Company.objects.filter(pk=app.company_id).update(founded_on=None)
    app.company.refresh_from_db()
    assert outcome(app, {"type": "founded_within_years", "years": 5}).outcome == "needs_review"


def test_max_headcount_and_revenue(app):
    assert outcome(app, {"type": "max_headcount", "max": 40}).outcome == "pass"
    assert outcome(app, {"type": "max_headcount", "max": 39}).outcome == "fail"
    assert outcome(app, {"type": "max_revenue", "max": "3000000"}).outcome == "pass"
    assert outcome(app, {"type": "max_revenue", "max": "2999999.99"}).outcome == "fail"


def test_required_documents_and_declarations(app):
    assert outcome(app, {"type": "required_documents"}).outcome == "pass"
    app.documents.all().delete()
    assert outcome(app, {"type": "required_documents"}).outcome == "fail"
    assert outcome(app, {"type": "declarations_made"}).outcome == "pass"
    app.declares_no_other_subsidy = False
    assert outcome(app, {"type": "declarations_made"}).outcome == "fail"


def test_no_open_application_in_program(app, sh_program, company, startup_user):
    assert outcome(app, {"type": "no_open_application_in_program"}).outcome == "pass"
    other = complete_draft(sh_program, company, startup_user)
    services.application_submit(application=other, actor=startup_user)
    assert outcome(app, {"type": "no_open_application_in_program"}).outcome == "fail"


def test_within_company_yearly_cap(app, sh_program):
    # Cap 3,000,000; request 500,000.
    assert outcome(app, {"type": "within_company_yearly_cap"}).outcome == "pass"
    voucher_issue(program=sh_program, company=app.company, amount=Decimal("2500000"), actor=SYSTEM)
    assert outcome(app, {"type": "within_company_yearly_cap"}).outcome == "pass"  # exactly the cap
    voucher_issue(program=sh_program, company=app.company, amount=Decimal("0.01"), actor=SYSTEM)
    assert outcome(app, {"type": "within_company_yearly_cap"}).outcome == "fail"


def test_hard_failure_goes_straight_to_not_recommended_when_the_program_says_so(app, startup_user):
    Program.objects.filter(pk=app.program_id).update(
        eligibility_rules=[{"type": "max_headcount", "max": 10}], hard_fail_rejects=True
    )
    app.refresh_from_db()
    services.application_submit(application=app, actor=startup_user)
    app.refresh_from_db()
    assert app.state == "not_recommended"
    assert "More than 10 employees" in app.decision_reason
    assert app.eligibility_outcomes.get().outcome == "fail"


def test_hard_failure_is_left_for_screening_otherwise(app, startup_user):
    Program.objects.filter(pk=app.program_id).update(
        eligibility_rules=[{"type": "max_headcount", "max": 10}], hard_fail_rejects=False
    )
    app.refresh_from_db()
    services.application_submit(application=app, actor=startup_user)
    app.refresh_from_db()
    assert (app.state, app.eligibility) == ("submitted", "fail")


def test_unknown_rules_are_refused_when_saving_a_program(shanghai):
    from portal.errors import DomainError
    from tests.vouchers.conftest import program_values

    with pytest.raises(DomainError) as err:
        services.program_save(
            city=shanghai.city,
            actor=shanghai.manager,
            values=program_values(eligibility_rules=[{"type": "astrology"}]),
        )
    assert err.value.code == "invalid"
    assert "eligibility_rules" in err.value.fields


def test_missing_documents_are_named_in_both_languages(app):
    app.program.required_documents = ["business_licence", "compute_contract", "board_minutes"]
    app.program.save(update_fields=["required_documents"])
    result = outcome(app, {"type": "required_documents"})
    assert result.message_zh == "缺少材料：board_minutes、算力采购合同。"
    assert result.message_en == "Missing documents: board_minutes, Compute purchase contract."


def test_document_types_are_shown_by_name_in_the_readers_language(client, app, startup_user):
    from django.conf import settings

    client.force_login(startup_user)
    url = f"/company/applications/{app.pk}/?step=documents"
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    assert "营业执照" in client.get(url).content.decode()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    assert "Business licence" in client.get(url).content.decode()


@pytest.mark.parametrize(
    "rule",
    [
        {"type": "max_headcount", "max": "lots"},
        {"type": "max_headcount", "max": 2.5},
        {"type": "max_headcount", "max": -1},
        {"type": "founded_within_years", "years": True},
        {"type": "max_revenue", "max": "NaN"},
        {"type": "within_company_yearly_cap", "cap": None},
        {"type": "registered_in_city", "city": "beijing"},
    ],
)
def test_rule_parameters_are_checked_when_saving_a_program(shanghai, rule):
    """A bad parameter must be refused here, not crash every later submission."""
    from portal.errors import DomainError
    from tests.vouchers.conftest import program_values

    with pytest.raises(DomainError) as err:
        services.program_save(
            city=shanghai.city,
            actor=shanghai.manager,
            values=program_values(eligibility_rules=[rule]),
        )
    assert err.value.code == "invalid"
    assert "eligibility_rules" in err.value.fields


def test_good_rule_parameters_are_accepted(shanghai):
    from tests.vouchers.conftest import program_values

    rules = [
        {"type": "max_headcount", "max": 300},
        {"type": "max_revenue", "max": "50000000"},
        {"type": "founded_within_years", "years": 5},
        {"type": "within_company_yearly_cap", "cap": "3000000.00"},
        {"type": "within_company_yearly_cap"},
    ]
    program = services.program_save(
        city=shanghai.city, actor=shanghai.manager, values=program_values(eligibility_rules=rules)
    )
    assert program.eligibility_rules == rules
