"""The application workflow as services: journeys, illegal steps, duties, budget."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.utils import timezone

from portal.errors import DomainError
from portal.models import AuditEvent
from tests.factories import MembershipFactory, UserFactory
from tests.vouchers.conftest import PNG, complete_draft, into_review, program_values, review_by
from vouchers import services, workflow
from vouchers.credit_code import credit_code_problem
from vouchers.models import Application, ApplicationState, Program, StateChange


@pytest.fixture(autouse=True)
def _english():
    """Messages are asserted in English here (the default language is Chinese)."""
    from django.utils import translation

    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def _eager(settings):
    from portal.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


def states(app):
    return list(StateChange.objects.filter(application=app).values_list("to_state", flat=True))


def test_screening_only_journey_in_shanghai(
    sh_program, company, startup_user, shanghai, django_capture_on_commit_callbacks
):
    app = complete_draft(sh_program, company, startup_user)
    with django_capture_on_commit_callbacks(execute=True):
        services.application_submit(application=app, actor=startup_user)
    assert mail.outbox[-1].to == [startup_user.email]
    services.application_start_screening(application=app, actor=shanghai.reviewer)
    services.application_pass_screening(application=app, actor=shanghai.reviewer)
    app.refresh_from_db()
    assert app.state == "recommended"  # no reviews, no notice
    with django_capture_on_commit_callbacks(execute=True):
        voucher = services.application_approve(
            application=app, actor=shanghai.approver, amount=Decimal("400000")
        )
    assert voucher.code.startswith("SH-")
    assert voucher.face_value == voucher.balance == Decimal("400000.00")
    assert voucher.application_id == app.pk
    assert Program.objects.get(pk=sh_program.pk).allocated == Decimal("400000.00")
    assert states(app) == ["draft", "submitted", "screening", "recommended", "approved"]
    assert voucher.code in mail.outbox[-1].body


def test_review_and_notice_journey_in_shenzhen(sz_program, shenzhen, startup_user, outsider):
    company = services.company_create(
        actor=startup_user, legal_name="深圳公司", credit_code="91440300708461136T"
    )
    app = complete_draft(sz_program, company, startup_user)
    into_review(app, user=startup_user, manager=shenzhen.manager)
    review_by(
        app,
        manager=shenzhen.manager,
        reviewers=(shenzhen.reviewer, shenzhen.reviewer2),
        scores={"team": 8, "plan": 9},
        comment="好",
        recommend=True,
    )
    app.refresh_from_db()
    assert app.state == "in_notice"
    assert app.notice_ends_at - timezone.now() > timedelta(days=4, hours=23)
    objection = services.objection_raise(application=app, user=outsider, text="与供应商存在关联")
    with pytest.raises(DomainError, match="not ended"):
        services.application_approve(
            application=app, actor=shenzhen.approver, amount=Decimal("500000")
        )
    Application.objects.filter(pk=app.pk).update(
        notice_ends_at=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(DomainError, match="objections"):
        services.application_approve(
            application=app, actor=shenzhen.approver, amount=Decimal("500000")
        )
    services.objection_resolve(objection=objection, actor=shenzhen.manager, resolution="核查无关联")
    voucher = services.application_approve(
        application=app, actor=shenzhen.approver, amount=Decimal("500000")
    )
    assert voucher.code.startswith("SZ-")
    review = app.reviews.get(reviewer=shenzhen.reviewer)
    assert review.total == Decimal("26")  # 8 x 1 + 9 x 2


def test_every_illegal_transition_is_refused_and_changes_nothing(
    sh_program, company, startup_user, shanghai
):
    app = complete_draft(sh_program, company, startup_user)
    staff_steps = {
        "start_screening": lambda a, u: services.application_start_screening(
            application=a, actor=u
        ),
        "pass_screening": lambda a, u: services.application_pass_screening(application=a, actor=u),
        "fail_screening": lambda a, u: services.application_fail_screening(
            application=a, actor=u, reason="x"
        ),
        "request_info": lambda a, u: services.application_request_info(
            application=a, actor=u, question="?"
        ),
        "approve": lambda a, u: services.application_approve(
            application=a, actor=u, amount=Decimal("200000")
        ),
        "reject": lambda a, u: services.application_reject(application=a, actor=u, reason="x"),
    }
    member_steps = {
        "answer_info": lambda a, u: services.application_answer_info(
            application=a, actor=u, answer="x"
        ),
    }
    actors = {
        "reviewer": shanghai.reviewer,
        "approver": shanghai.approver,
        "program_manager": shanghai.manager,
    }
    for state in ApplicationState.values:
        Application.objects.filter(pk=app.pk).update(state=state, notice_ends_at=None)
        for name, step in staff_steps.items():
            t = workflow.TRANSITIONS[name]
            for role, user in actors.items():
                if state in t.sources and role in t.who:
                    continue
                with pytest.raises(DomainError):
                    step(Application.objects.get(pk=app.pk), user)
                assert Application.objects.get(pk=app.pk).state == state, (name, role, state)
        for name, step in member_steps.items():
            if state in workflow.TRANSITIONS[name].sources:
                continue
            with pytest.raises(DomainError):
                step(Application.objects.get(pk=app.pk), startup_user)
            assert Application.objects.get(pk=app.pk).state == state


def test_submit_needs_a_complete_application(sh_program, company, startup_user):
    app = services.application_create(program=sh_program, company=company, actor=startup_user)
    with pytest.raises(DomainError) as err:
        services.application_submit(application=app, actor=startup_user)
    assert {"title", "requested_amount", "compute_plan", "declarations", "documents"} <= set(
        err.value.fields
    )
    app.refresh_from_db()
    assert app.state == "draft"


def test_withdraw_before_a_decision_only(sh_program, company, startup_user, shanghai, outsider):
    app = complete_draft(sh_program, company, startup_user)
    services.application_submit(application=app, actor=startup_user)
    with pytest.raises(DomainError):
        services.application_withdraw(application=app, actor=outsider)
    services.application_withdraw(application=app, actor=startup_user)
    app.refresh_from_db()
    assert app.state == "withdrawn"
    with pytest.raises(DomainError):
        services.application_withdraw(application=app, actor=startup_user)


def test_information_request_and_resubmission(sh_program, company, startup_user, shanghai):
    app = complete_draft(sh_program, company, startup_user)
    services.application_submit(application=app, actor=startup_user)
    services.application_start_screening(application=app, actor=shanghai.reviewer)
    services.application_request_info(
        application=app, actor=shanghai.reviewer, question="请补充合同"
    )
    services.application_update(application=app, actor=startup_user, values={"summary": "补充说明"})
    services.application_answer_info(application=app, actor=startup_user, answer="已补充")
    app.refresh_from_db()
    assert app.state == "screening"
    assert app.info_requests.get().answer == "已补充"


def test_conflict_of_interest_ends_the_reviewers_part(sz_program, shenzhen, startup_user):
    company = services.company_create(
        actor=startup_user, legal_name="X", credit_code="91440300708461136T"
    )
    app = complete_draft(sz_program, company, startup_user)
    into_review(app, user=startup_user, manager=shenzhen.manager)
    services.review_assign(application=app, actor=shenzhen.manager, reviewer=shenzhen.reviewer)
    with pytest.raises(DomainError, match="conflict"):
        services.review_submit(
            application=app,
            actor=shenzhen.reviewer,
            scores={"team": 1, "plan": 1},
            comment="",
            recommend=True,
        )
    services.review_declare(application=app, actor=shenzhen.reviewer, conflict=True, note="前同事")
    with pytest.raises(DomainError):
        services.review_submit(
            application=app,
            actor=shenzhen.reviewer,
            scores={"team": 1, "plan": 1},
            comment="",
            recommend=True,
        )
    with pytest.raises(DomainError):  # not assigned
        services.review_declare(application=app, actor=shenzhen.reviewer2, conflict=False)


def test_approver_cannot_approve_an_application_they_reviewed(sz_program, shenzhen, startup_user):
    from portal.models import Role
    from portal.services import membership_grant

    membership_grant(actor=None, city=shenzhen.city, user=shenzhen.approver, role=Role.REVIEWER)
    company = services.company_create(
        actor=startup_user, legal_name="X", credit_code="91440300708461136T"
    )
    app = complete_draft(sz_program, company, startup_user)
    into_review(app, user=startup_user, manager=shenzhen.manager)
    review_by(
        app,
        manager=shenzhen.manager,
        reviewers=(shenzhen.approver, shenzhen.reviewer),
        scores={"team": 9, "plan": 9},
        comment="",
        recommend=True,
    )
    Application.objects.filter(pk=app.pk).update(
        notice_ends_at=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(DomainError, match="reviewed"):
        services.application_approve(
            application=app, actor=shenzhen.approver, amount=Decimal("500000")
        )


def test_approval_amount_within_program_bounds(sh_program, company, startup_user, shanghai):
    app = complete_draft(sh_program, company, startup_user)
    services.application_submit(application=app, actor=startup_user)
    services.application_start_screening(application=app, actor=shanghai.reviewer)
    services.application_pass_screening(application=app, actor=shanghai.reviewer)
    for amount in ("99999.99", "2000000.01"):
        with pytest.raises(DomainError) as err:
            services.application_approve(
                application=app, actor=shanghai.approver, amount=Decimal(amount)
            )
        assert "amount" in err.value.fields


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
    outcomes = []

    def approve(app):
        try:
            services.application_approve(
                application=app, actor=sh.approver, amount=Decimal("400000")
            )
            outcomes.append("approved")
        except DomainError as error:
            outcomes.append(error.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=approve, args=(a,)) for a in ready]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["approved", "approved", "conflict", "conflict", "conflict"]
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
    assert "GB 32100" in err.value.fields["credit_code"][0]
    services.company_create(actor=startup_user, legal_name="X", credit_code="91440300708461136T")
    with pytest.raises(DomainError, match="already"):
        services.company_create(
            actor=startup_user, legal_name="Y", credit_code="91440300708461136T"
        )


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
        with pytest.raises(DomainError):
            services.document_add(application=app, actor=startup_user, doc_type="x", upload=upload)


def test_documents_over_20_mb_are_refused(sh_program, company, startup_user):
    app = services.application_create(program=sh_program, company=company, actor=startup_user)
    upload = SimpleUploadedFile("big.pdf", b"%PDF-" + b"0" * (20 * 1024 * 1024 - 4))
    with pytest.raises(DomainError, match="20 MB"):
        services.document_add(application=app, actor=startup_user, doc_type="x", upload=upload)


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
    assert {"award_min", "award_max", "rate_other", "rubric"} <= set(err.value.fields)
    with pytest.raises(DomainError):
        services.program_save(city=shanghai.city, actor=shanghai.reviewer, values=program_values())


def test_reviewers_are_reminded_once_after_five_days(sz_program, shenzhen, startup_user):
    from compute.jobs import reminders_send
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
        application=first, actor=shanghai.approver, amount=Decimal("2000000")
    )
    # The cap is 3,000,000: 2,000,000 awarded, so 1,000,001 would exceed it.
    with pytest.raises(DomainError) as err:
        services.application_approve(
            application=second, actor=shanghai.approver, amount=Decimal("1000000.01")
        )
    assert "yearly cap" in err.value.fields["amount"][0]
    second.refresh_from_db()
    assert second.state == "recommended"
    services.application_approve(
        application=second, actor=shanghai.approver, amount=Decimal("1000000")
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
    for step in (
        lambda u: services.application_start_screening(application=app, actor=u),
        lambda u: services.review_assign(application=app, actor=u, reviewer=shanghai.reviewer2),
    ):
        for user in (shanghai.reviewer, shanghai.manager):
            with pytest.raises(DomainError) as err:
                step(user)
            assert err.value.code in ("forbidden", "invalid")
    app.refresh_from_db()
    assert services.application_actions(app, shanghai.manager) == ["withdraw"]
    services.application_start_screening(application=app, actor=shanghai.reviewer2)
    with pytest.raises(DomainError, match="another staff member"):
        services.application_pass_screening(application=app, actor=shanghai.reviewer)
    other_manager = UserFactory(email="m2@shanghai.test")
    MembershipFactory(user=other_manager, city=shanghai.city, role="program_manager")
    with pytest.raises(DomainError) as err:
        services.review_assign(application=app, actor=other_manager, reviewer=shanghai.reviewer)
    assert "reviewer" in err.value.fields
    services.application_pass_screening(application=app, actor=shanghai.reviewer2)
    app.refresh_from_db()
    assert app.state == "recommended"
    with pytest.raises(DomainError, match="another staff member"):
        services.application_approve(
            application=app, actor=shanghai.approver, amount=Decimal("500000")
        )
    assert Application.objects.get(pk=app.pk).state == "recommended"
