"""The rules around the application workflow (split out of test_workflow.py by subject):
the budget under concurrent approvals, credit codes, documents judged by content and
size, program validation, reviewer reminders, the company's yearly cap, and staff on
their own company's application."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from functools import partial

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from portal.errors import DomainError
from portal.models import AuditEvent
from tests.concurrency import outcome_codes, race
from tests.factories import MembershipFactory, UserFactory
from tests.vouchers.conftest import PNG, complete_draft, into_review, program_values
from vouchers import services
from vouchers.credit_code import credit_code_problem
from vouchers.models import (
    Application,
    Program,
    StateChange,
)


@pytest.fixture(autouse=True)
def _english():
    """Messages are asserted in English here (the default language is Chinese)."""
    from django.utils import translation

    with translation.override("en"):
        yield


pytestmark = pytest.mark.usefixtures("eager_celery")


def states(app):
    return list(StateChange.objects.filter(application=app).values_list("to_state", flat=True))


@pytest.mark.django_db(transaction=True)
def test_concurrent_approvals_never_exceed_the_budget():
    from tests.conftest import _city_world
    from tests.factories import UserFactory

    sh = _city_world("shanghai", "SH", "上海市", "Shanghai")
    program = services.program_save(
        city=sh.city,
        actor=sh.manager,
        values=program_values(budget=Decimal("1000000"), award_max=Decimal("400000")),
    )
    import random

    from vouchers.credit_code import credit_code_generate

    rng = random.Random(5)
    apps = [(UserFactory(email=f"c{i}@startup.test"), None) for i in range(5)]
    ready = []
    for i, (user, _c) in enumerate(apps):
        company = services.company_create(
            actor=user, legal_name=f"公司{i}", credit_code=credit_code_generate(rng)
        )
        app = complete_draft(program, company, user, amount="400000")
        services.application_submit(application=app, actor=user)
        services.application_start_screening(application=app, actor=sh.reviewer)
        services.application_pass_screening(application=app, actor=sh.reviewer)
        ready.append(app)

    def approver(app):
        return lambda: services.application_approve(
            application=app,
            actor=sh.approver,
            amount=Decimal("400000"),
            reason="Scaled to the plan",
        )

    outcomes = race(*(approver(a) for a in ready))
    assert outcome_codes(outcomes) == ["conflict", "conflict", "conflict", "done", "done"]
    program.refresh_from_db()
    assert program.allocated == Decimal("800000.00")
    assert Application.objects.filter(state="approved").count() == 2
    assert Application.objects.filter(state="recommended").count() == 3


@pytest.mark.parametrize(
    ("code", "problem"),
    [
        ("91440300708461136T", None),
        ("911100007109310534", None),
        ("91110000802100433B", None),
        ("91440300708461136U", "check"),
        ("9144030070846113", "length"),
        ("91440300708461136O", "characters"),
        ("9144030070846113I6", "characters"),
    ],
)
def test_credit_codes(code, problem):
    assert credit_code_problem(code) == problem


def test_company_rejects_a_wrong_credit_code_with_a_clear_message(startup_user):
    with pytest.raises(DomainError) as err:
        services.company_create(
            actor=startup_user, legal_name="X", credit_code="91440300708461136U"
        )
    assert err.value.code == "invalid"
    assert "GB 32100" in err.value.fields["credit_code"][0]
    services.company_create(actor=startup_user, legal_name="X", credit_code="91440300708461136T")
    with pytest.raises(DomainError, match="already") as err:
        services.company_create(
            actor=startup_user, legal_name="Y", credit_code="91440300708461136T"
        )
    assert err.value.code == "invalid"
    assert "credit_code" in err.value.fields


@pytest.mark.parametrize(
    ("name", "content", "ok"),
    [
        ("a.pdf", b"%PDF-1.4 rest", True),
        ("a.png", PNG, True),
        ("a.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 20, True),
        ("evil.pdf", b"MZ\x90\x00 windows exe", False),
        ("a.pdf", b"<html>not a pdf</html>", False),
        ("a.gif", b"GIF89a....", False),
    ],
)
def test_documents_are_judged_by_content(sh_program, company, startup_user, name, content, ok):
    app = services.application_create(program=sh_program, company=company, actor=startup_user)
    upload = SimpleUploadedFile(name, content)
    if ok:
        document = services.document_add(
            application=app, actor=startup_user, doc_type="x", upload=upload
        )
        event = AuditEvent.objects.get(action="document.add")
        assert event.city == sh_program.city and event.data["size"] == document.size
    else:
        with pytest.raises(DomainError) as err:
            services.document_add(application=app, actor=startup_user, doc_type="x", upload=upload)
        assert err.value.code == "invalid"
        assert "judged by their content" in err.value.fields["file"][0]
        assert not app.documents.exists()


def test_documents_over_20_mb_are_refused(sh_program, company, startup_user):
    app = services.application_create(program=sh_program, company=company, actor=startup_user)
    upload = SimpleUploadedFile("big.pdf", b"%PDF-" + b"0" * (20 * 1024 * 1024 - 4))
    with pytest.raises(DomainError, match="20 MB") as err:
        services.document_add(application=app, actor=startup_user, doc_type="x", upload=upload)
    assert err.value.code == "invalid"
    assert list(err.value.fields) == ["file"]
    assert not app.documents.exists()


def test_program_validation(shanghai):
    with pytest.raises(DomainError) as err:
        services.program_save(
            city=shanghai.city,
            actor=shanghai.manager,
            values=program_values(
                award_min=Decimal("3000000"),
                budget=Decimal("1500000"),
                rate_other=Decimal("1.5"),
                reviews_required=1,
                rubric=[],
            ),
        )
    assert err.value.code == "invalid"
    assert {"award_min", "award_max", "rate_other", "rubric"} <= set(err.value.fields)
    with pytest.raises(DomainError) as err:
        services.program_save(city=shanghai.city, actor=shanghai.reviewer, values=program_values())
    assert err.value.code == "forbidden"
    assert not Program.objects.exists()


def test_reviewers_are_reminded_once_after_five_days(sz_program, shenzhen, startup_user):
    from vouchers.jobs import reminders_send
    from vouchers.models import Review

    company = services.company_create(
        actor=startup_user, legal_name="X", credit_code="91440300708461136T"
    )
    app = complete_draft(sz_program, company, startup_user)
    into_review(app, user=startup_user, manager=shenzhen.manager)
    services.review_assign(application=app, actor=shenzhen.manager, reviewer=shenzhen.reviewer)
    mail.outbox.clear()
    assert reminders_send() == 0
    Review.objects.update(assigned_at=timezone.now() - timedelta(days=6))
    assert reminders_send() == 1
    assert mail.outbox[0].to == [shenzhen.reviewer.email]
    assert reminders_send() == 0


@pytest.mark.parametrize(
    ("field", "value", "overrides"),
    [
        (
            "rubric",
            [{"name": "team", "weight": 1, "max": 10}, {"name": "team", "weight": 2, "max": 5}],
            {"reviews_required": 1},
        ),
        ("required_documents", ["business_licence", 5], {}),
        ("required_documents", ["business_licence", " "], {}),
    ],
)
def test_program_validation_of_rubric_names_and_document_types(shanghai, field, value, overrides):
    with pytest.raises(DomainError) as err:
        services.program_save(
            city=shanghai.city,
            actor=shanghai.manager,
            values=program_values(**{field: value, **overrides}),
        )
    assert err.value.code == "invalid"
    assert field in err.value.fields


def test_approval_keeps_the_company_within_the_citys_yearly_cap(
    sh_program, company, startup_user, shanghai
):
    other = services.program_save(
        city=shanghai.city, actor=shanghai.manager, values=program_values(slug="other")
    )
    first = complete_draft(other, company, startup_user, amount="2000000")
    second = complete_draft(sh_program, company, startup_user, amount="600000")
    for app in (first, second):
        services.application_submit(application=app, actor=startup_user)
        services.application_start_screening(application=app, actor=shanghai.reviewer)
        services.application_pass_screening(application=app, actor=shanghai.reviewer)
    services.application_approve(
        application=first,
        actor=shanghai.approver,
        amount=Decimal("2000000"),
        reason="Scaled to the plan",
    )
    # The cap is 3,000,000: 2,000,000 awarded, so 1,000,001 would exceed it.
    with pytest.raises(DomainError) as err:
        services.application_approve(
            application=second,
            actor=shanghai.approver,
            amount=Decimal("1000000.01"),
            reason="Scaled to the plan",
        )
    assert err.value.code == "invalid"
    assert "yearly cap" in err.value.fields["amount"][0]
    second.refresh_from_db()
    assert second.state == "recommended"
    services.application_approve(
        application=second,
        actor=shanghai.approver,
        amount=Decimal("1000000"),
        reason="Scaled to the plan",
    )


def test_staff_take_no_staff_step_on_their_own_companys_application(
    sh_program, company, startup_user, shanghai
):
    """A reviewer or approver of the city who also belongs to the applicant company
    neither screens, reviews, nor decides its application."""
    for user in (shanghai.reviewer, shanghai.approver, shanghai.manager):
        company.members.add(user)
    app = complete_draft(sh_program, company, startup_user)
    services.application_submit(application=app, actor=startup_user)
    for step, user, message in (
        (services.application_start_screening, shanghai.reviewer, "another staff member"),
        (services.application_start_screening, shanghai.manager, "another staff member"),
        (
            partial(services.review_assign, reviewer=shanghai.reviewer2),
            shanghai.manager,
            "another staff member",
        ),
        (
            partial(services.review_assign, reviewer=shanghai.reviewer2),
            shanghai.reviewer,
            "Only program managers",
        ),
    ):
        with pytest.raises(DomainError, match=message) as err:
            step(application=app, actor=user)
        assert err.value.code == "forbidden"
    assert not app.reviews.exists()
    app.refresh_from_db()
    assert services.application_actions(app, shanghai.manager) == ["withdraw"]
    services.application_start_screening(application=app, actor=shanghai.reviewer2)
    with pytest.raises(DomainError, match="another staff member") as err:
        services.application_pass_screening(application=app, actor=shanghai.reviewer)
    assert err.value.code == "forbidden"
    other_manager = UserFactory(email="m2@shanghai.test")
    MembershipFactory(user=other_manager, city=shanghai.city, role="program_manager")
    with pytest.raises(DomainError) as err:
        services.review_assign(application=app, actor=other_manager, reviewer=shanghai.reviewer)
    assert err.value.code == "invalid"
    assert "member of the applicant company" in err.value.fields["reviewer"][0]
    services.application_pass_screening(application=app, actor=shanghai.reviewer2)
    app.refresh_from_db()
    assert app.state == "recommended"
    with pytest.raises(DomainError, match="another staff member") as err:
        services.application_approve(
            application=app,
            actor=shanghai.approver,
            amount=Decimal("500000"),
            reason="Scaled to the plan",
        )
    assert err.value.code == "forbidden"
    assert Application.objects.get(pk=app.pk).state == "recommended"
