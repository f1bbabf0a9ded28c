"""The application workflow as services: journeys, illegal steps, duties, budget."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from functools import partial

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import F
from django.utils import timezone

from portal.audit import SYSTEM
from portal.errors import DomainError
from portal.models import AuditEvent
from tests.concurrency import outcome_codes, race
from tests.factories import MembershipFactory, UserFactory
from tests.vouchers.conftest import PNG, complete_draft, into_review, program_values, review_by
from vouchers import services
from vouchers.credit_code import credit_code_problem
from vouchers.models import (
    Application,
    ApplicationState,
    Objection,
    Program,
    StateChange,
    Voucher,
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
            application=app,
            actor=shanghai.approver,
            amount=Decimal("400000"),
            reason="Scaled to the plan",
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
    objection = services.objection_raise(application=app, actor=outsider, text="与供应商存在关联")
    with pytest.raises(DomainError, match="not ended") as err:
        services.application_approve(
            application=app,
            actor=shenzhen.approver,
            amount=Decimal("500000"),
            reason="Scaled to the plan",
        )
    assert err.value.code == "conflict"
    Application.objects.filter(pk=app.pk).update(
        notice_ends_at=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(DomainError, match="objections") as err:
        services.application_approve(
            application=app,
            actor=shenzhen.approver,
            amount=Decimal("500000"),
            reason="Scaled to the plan",
        )
    assert err.value.code == "conflict"
    services.objection_resolve(objection=objection, actor=shenzhen.manager, resolution="核查无关联")
    voucher = services.application_approve(
        application=app,
        actor=shenzhen.approver,
        amount=Decimal("500000"),
        reason="Scaled to the plan",
    )
    assert voucher.code.startswith("SZ-")
    review = app.reviews.get(reviewer=shenzhen.reviewer)
    assert review.total == Decimal("26")  # 8 x 1 + 9 x 2


# The expectations, written out here rather than read from `workflow.TRANSITIONS` (the
# table under test): who may take each step, and in which states each step is possible.
MEMBER, REVIEWER, APPROVER, MANAGER, AUDITOR = (
    "member",
    "reviewer",
    "approver",
    "program_manager",
    "auditor",
)
WHO_MAY = {
    "submit": {MEMBER},
    "withdraw": {MEMBER},
    "answer_info": {MEMBER},
    "start_screening": {REVIEWER, MANAGER},
    "pass_screening": {REVIEWER, MANAGER},
    "fail_screening": {REVIEWER, MANAGER},
    "request_info": {REVIEWER, MANAGER},
    "assign": {MANAGER},
    "approve": {APPROVER},
    "reject": {APPROVER},
    "resolve_objection": {MANAGER, APPROVER},
    "break_tie": {MANAGER},
    "accept_award": {MEMBER},
    "decline_award": {MEMBER},
}
POSSIBLE_IN = {
    "draft": {"submit", "withdraw"},
    "submitted": {"withdraw", "start_screening", "assign"},
    "screening": {"withdraw", "pass_screening", "fail_screening", "request_info", "assign"},
    "in_review": {"withdraw", "request_info", "assign"},
    "tie_break": {"withdraw", "assign", "break_tie"},
    "info_requested": {"withdraw", "answer_info", "assign"},
    "recommended": {"withdraw", "approve", "reject"},
    "not_recommended": {"withdraw", "reject"},
    "in_notice": {"withdraw", "approve", "reject", "resolve_objection"},
    "awarded": {"accept_award", "decline_award"},
    "approved": set(),
    "rejected": set(),
    "withdrawn": set(),
    "declined": set(),
    "lapsed": set(),
}
# Where each possible step leads in the Shanghai program (no reviews, no notice); None:
# the step is not a state change.
LEADS_TO = {
    "submit": "submitted",
    "withdraw": "withdrawn",
    "answer_info": "screening",
    "start_screening": "screening",
    "pass_screening": "recommended",
    "fail_screening": "not_recommended",
    "request_info": "info_requested",
    "assign": None,
    "approve": "approved",
    "reject": "rejected",
    "resolve_objection": None,
    "break_tie": "recommended",
    "accept_award": "approved",
    "decline_award": "declined",
}


def _steps(shanghai, outsider):
    def resolve(a, u):
        objection = Objection.objects.create(application=a, raised_by=outsider, text="关联")
        return services.objection_resolve(objection=objection, actor=u, resolution="无关联")

    return {
        "submit": lambda a, u: services.application_submit(application=a, actor=u),
        "withdraw": lambda a, u: services.application_withdraw(application=a, actor=u),
        "answer_info": lambda a, u: services.application_answer_info(
            application=a, actor=u, answer="x"
        ),
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
        "assign": lambda a, u: services.review_assign(
            application=a, actor=u, reviewer=shanghai.reviewer2
        ),
        "approve": lambda a, u: services.application_approve(
            application=a, actor=u, amount=Decimal("200000"), reason="Scaled to the plan"
        ),
        "reject": lambda a, u: services.application_reject(application=a, actor=u, reason="x"),
        "resolve_objection": resolve,
        "break_tie": lambda a, u: services.application_break_tie(
            application=a, actor=u, recommend=True, reason="x"
        ),
        "accept_award": lambda a, u: services.award_accept(application=a, actor=u),
        "decline_award": lambda a, u: services.award_decline(application=a, actor=u),
    }


def _footprint(app) -> tuple:
    fresh = Application.objects.get(pk=app.pk)
    return (
        fresh.state,
        fresh.resume_state,
        fresh.decision_reason,
        StateChange.objects.filter(application=app).count(),
        AuditEvent.objects.count(),
        Voucher.objects.count(),
        app.reviews.count(),
        app.info_requests.count(),
        Objection.objects.filter(resolved_at__isnull=False).count(),
    )


def test_every_illegal_transition_is_refused_and_changes_nothing(
    sh_program, company, startup_user, shanghai, outsider
):
    assert set(POSSIBLE_IN) == set(ApplicationState.values)
    app = complete_draft(sh_program, company, startup_user)
    actors = {
        MEMBER: startup_user,
        REVIEWER: shanghai.reviewer,
        APPROVER: shanghai.approver,
        MANAGER: shanghai.manager,
        AUDITOR: shanghai.auditor,
    }
    refused = 0
    for state, possible in POSSIBLE_IN.items():
        Application.objects.filter(pk=app.pk).update(state=state, notice_ends_at=None)
        for name, step in _steps(shanghai, outsider).items():
            for role, user in actors.items():
                if name in possible and role in WHO_MAY[name]:
                    continue
                before = _footprint(app)
                with pytest.raises(DomainError) as err:
                    step(Application.objects.get(pk=app.pk), user)
                # The wrong party is refused as such in every state; the right party in
                # the wrong state is told the state does not allow it.
                expected = "forbidden" if role not in WHO_MAY[name] else "conflict"
                assert err.value.code == expected, (state, name, role, err.value.message)
                assert _footprint(app) == before, (state, name, role)
                refused += 1
            before = _footprint(app)
            with pytest.raises(DomainError) as err:
                step(Application.objects.get(pk=app.pk), outsider)
            assert err.value.code == "not_found", (state, name)
            assert _footprint(app) == before, (state, name, "outsider")
    assert refused == 15 * 14 * 5 - 36


def test_every_legal_transition_is_taken(sh_program, company, startup_user, shanghai, outsider):
    """The other half of the table: each party it allows succeeds, and lands where it says."""
    actors = {
        MEMBER: startup_user,
        REVIEWER: shanghai.reviewer,
        APPROVER: shanghai.approver,
        MANAGER: shanghai.manager,
    }
    taken = 0
    for state, possible in POSSIBLE_IN.items():
        for name in sorted(possible):
            for role in sorted(WHO_MAY[name]):
                app = complete_draft(sh_program, company, startup_user, amount="200000")
                Application.objects.filter(pk=app.pk).update(state=state, notice_ends_at=None)
                if state == "awarded":  # an award holds its amount of the budget
                    Application.objects.filter(pk=app.pk).update(awarded_amount=Decimal("200000"))
                    Program.objects.filter(pk=sh_program.pk).update(
                        reserved=F("reserved") + Decimal("200000")
                    )
                _steps(shanghai, outsider)[name](Application.objects.get(pk=app.pk), actors[role])
                landed = Application.objects.get(pk=app.pk).state
                assert landed == (LEADS_TO[name] or state), (state, name, role)
                taken += 1
    assert taken == 36


def test_submit_needs_a_complete_application(sh_program, company, startup_user):
    app = services.application_create(program=sh_program, company=company, actor=startup_user)
    with pytest.raises(DomainError) as err:
        services.application_submit(application=app, actor=startup_user)
    assert err.value.code == "invalid"
    assert {"title", "requested_amount", "compute_plan", "declarations", "documents"} <= set(
        err.value.fields
    )
    app.refresh_from_db()
    assert app.state == "draft"


def test_withdraw_before_a_decision_only(sh_program, company, startup_user, shanghai, outsider):
    app = complete_draft(sh_program, company, startup_user)
    services.application_submit(application=app, actor=startup_user)
    with pytest.raises(DomainError) as err:
        services.application_withdraw(application=app, actor=outsider)
    assert err.value.code == "not_found"
    services.application_withdraw(application=app, actor=startup_user)
    app.refresh_from_db()
    assert app.state == "withdrawn"
    with pytest.raises(DomainError) as err:
        services.application_withdraw(application=app, actor=startup_user)
    assert err.value.code == "conflict"


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
    with pytest.raises(DomainError, match="Declare any conflict") as err:
        services.review_submit(
            application=app,
            actor=shenzhen.reviewer,
            scores={"team": 1, "plan": 1},
            comment="",
            recommend=True,
        )
    assert err.value.code == "conflict"
    services.review_declare(application=app, actor=shenzhen.reviewer, conflict=True, note="前同事")
    with pytest.raises(DomainError, match="declared a conflict") as err:
        services.review_submit(
            application=app,
            actor=shenzhen.reviewer,
            scores={"team": 1, "plan": 1},
            comment="",
            recommend=True,
        )
    assert err.value.code == "forbidden"
    assert app.reviews.get(reviewer=shenzhen.reviewer).submitted_at is None
    with pytest.raises(DomainError, match="not assigned") as err:
        services.review_declare(application=app, actor=shenzhen.reviewer2, conflict=False)
    assert err.value.code == "forbidden"


def test_approver_cannot_approve_an_application_they_reviewed(sz_program, shenzhen, startup_user):
    from portal.models import Role
    from portal.services import membership_grant

    membership_grant(actor=SYSTEM, city=shenzhen.city, user=shenzhen.approver, role=Role.REVIEWER)
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
    with pytest.raises(DomainError, match="reviewed") as err:
        services.application_approve(
            application=app,
            actor=shenzhen.approver,
            amount=Decimal("500000"),
            reason="Scaled to the plan",
        )
    assert err.value.code == "forbidden"
    assert Application.objects.get(pk=app.pk).state == "in_notice"


def test_approval_amount_within_program_bounds(sh_program, company, startup_user, shanghai):
    app = complete_draft(sh_program, company, startup_user)
    services.application_submit(application=app, actor=startup_user)
    services.application_start_screening(application=app, actor=shanghai.reviewer)
    services.application_pass_screening(application=app, actor=shanghai.reviewer)
    for amount in ("99999.99", "2000000.01"):
        with pytest.raises(DomainError) as err:
            services.application_approve(
                application=app,
                actor=shanghai.approver,
                amount=Decimal(amount),
                reason="Scaled to the plan",
            )
        assert err.value.code == "invalid"
        assert "Award between" in err.value.fields["amount"][0]


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
