"""The application workflow as services: journeys, illegal steps, duties, budget."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.db.models import F
from django.utils import timezone

from portal.audit import SYSTEM
from portal.errors import DomainError
from portal.models import AuditEvent
from tests.vouchers.conftest import complete_draft, into_review, review_by
from vouchers import services
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
