"""Notifications: one e-mail per member and event, each in the recipient's language,
sent by Celery tasks enqueued after commit (run eagerly here, workflow unit tests)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone

from portal.errors import DomainError
from tests.factories import UserFactory
from tests.vouchers.conftest import RUBRIC, complete_draft, into_review, program_values, review_by
from vouchers import services
from vouchers.models import Application

pytestmark = pytest.mark.usefixtures("eager_celery")


def _subjects(email: str) -> list[str]:
    return [m.subject for m in mail.outbox if m.to == [email]]


def test_each_event_reaches_every_member_in_their_language(
    sh_program, shenzhen, company, startup_user, django_capture_on_commit_callbacks
):
    startup_user.preferred_language = "zh-hans"
    startup_user.save(update_fields=["preferred_language"])
    english = UserFactory(email="cfo@startup.test", preferred_language="en")
    company.members.add(english)
    sz = services.program_save(
        city=shenzhen.city,
        actor=shenzhen.manager,
        values=program_values(reviews_required=1, rubric=RUBRIC, notice_days=5),
    )
    shenzhen.reviewer.preferred_language = "en"
    shenzhen.reviewer.save(update_fields=["preferred_language"])
    app = complete_draft(sz, company, startup_user)
    with django_capture_on_commit_callbacks(execute=True):
        services.application_submit(application=app, actor=startup_user)
        services.application_start_screening(application=app, actor=shenzhen.manager)
        services.application_request_info(
            application=app, actor=shenzhen.manager, question="请补充合同"
        )
        services.application_answer_info(application=app, actor=english, answer="已补充")
        services.application_pass_screening(application=app, actor=shenzhen.manager)
        services.review_assign(application=app, actor=shenzhen.manager, reviewer=shenzhen.reviewer)
        services.review_declare(application=app, actor=shenzhen.reviewer, conflict=False)
        services.review_submit(
            application=app,
            actor=shenzhen.reviewer,
            scores={"team": 9, "plan": 9},
            comment="ok",
            recommend=True,
        )
    Application.objects.filter(pk=app.pk).update(notice_ends_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        voucher = services.application_approve(
            application=app, actor=shenzhen.approver, amount=Decimal("300000")
        )

    en = _subjects(english.email)
    assert [s.split(":")[0] for s in en] == [
        "[Suanli] Application received",
        "[Suanli] More information needed",
        "[Suanli] In public notice",
        f"[Suanli] Approved, voucher {voucher.code}",
    ]
    zh = _subjects(startup_user.email)
    assert len(zh) == 4
    assert all("[Suanli]" not in s for s in zh), zh
    assert voucher.code in zh[-1]
    body = next(m.body for m in mail.outbox if m.to == [english.email] and "Approved" in m.subject)
    assert "300,000.00" in body and voucher.valid_until.isoformat() in body
    app.refresh_from_db()
    assert _subjects(shenzhen.reviewer.email) == [f"[Suanli] Please review: {app.title}"]


def test_rejection_and_screening_failure_are_sent_with_the_reason(
    sh_program, shanghai, company, startup_user, django_capture_on_commit_callbacks
):
    startup_user.preferred_language = "en"
    startup_user.save(update_fields=["preferred_language"])
    first = complete_draft(sh_program, company, startup_user)
    with django_capture_on_commit_callbacks(execute=True):
        services.application_submit(application=first, actor=startup_user)
        services.application_start_screening(application=first, actor=shanghai.reviewer)
        services.application_fail_screening(
            application=first, actor=shanghai.reviewer, reason="No contract attached"
        )
        services.application_reject(
            application=first, actor=shanghai.approver, reason="Not eligible this year"
        )
    bodies = {m.subject.split(":")[0]: m.body for m in mail.outbox}
    assert "No contract attached" in bodies["[Suanli] Not recommended"]
    assert "Not eligible this year" in bodies["[Suanli] Not approved"]


def test_nothing_is_sent_when_the_transition_is_rolled_back(
    sh_program, shanghai, company, startup_user, django_capture_on_commit_callbacks
):
    app = complete_draft(sh_program, company, startup_user)
    with django_capture_on_commit_callbacks(execute=True):
        services.application_submit(application=app, actor=startup_user)
    mail.outbox.clear()
    services.application_start_screening(application=app, actor=shanghai.reviewer)
    services.application_pass_screening(application=app, actor=shanghai.reviewer)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(DomainError) as err:
            services.application_approve(
                application=app, actor=shanghai.approver, amount=Decimal("99999999")
            )
        assert err.value.code == "invalid"
        assert list(err.value.fields) == ["amount"]
        # A step that succeeds inside a transaction which then fails sends nothing either.
        with pytest.raises(RuntimeError, match="later step"), transaction.atomic():
            services.application_approve(
                application=app, actor=shanghai.approver, amount=Decimal("500000")
            )
            raise RuntimeError("a later step of the same transaction failed")
    assert callbacks == [] and mail.outbox == []
    assert Application.objects.get(pk=app.pk).state == "recommended"


def test_an_invitation_is_sent_in_the_invitees_language_when_known(
    company, startup_user, django_capture_on_commit_callbacks
):
    UserFactory(email="known@startup.test", preferred_language="en")
    with django_capture_on_commit_callbacks(execute=True):
        services.company_invite(company=company, actor=startup_user, email="Known@startup.test")
        services.company_invite(company=company, actor=startup_user, email="new@startup.test")
    subjects = {m.to[0]: m.subject for m in mail.outbox}
    assert subjects["known@startup.test"].startswith("[Suanli] You are invited to join")
    assert "[Suanli]" not in subjects["new@startup.test"]  # the site's language, Chinese
    assert company.legal_name in subjects["new@startup.test"]


def test_an_eligibility_refusal_gives_each_member_the_reasons_in_their_language(
    shanghai, company, startup_user, django_capture_on_commit_callbacks
):
    startup_user.preferred_language = "zh-hans"
    startup_user.save(update_fields=["preferred_language"])
    english = UserFactory(email="coo@startup.test", preferred_language="en")
    company.members.add(english)
    program = services.program_save(
        city=shanghai.city,
        actor=shanghai.manager,
        values=program_values(
            eligibility_rules=[{"type": "max_headcount", "max": 10}], hard_fail_rejects=True
        ),
    )
    app = complete_draft(program, company, startup_user)
    with django_capture_on_commit_callbacks(execute=True):
        services.application_submit(application=app, actor=startup_user)
    app.refresh_from_db()
    assert app.state == "not_recommended"
    bodies = {m.to[0]: m.body for m in mail.outbox}
    assert "More than 10 employees." in bodies[english.email]
    assert "员工超过 10 人。" in bodies[startup_user.email]
    assert "employees" not in bodies[startup_user.email]


def test_a_review_refusal_gives_the_tally_in_each_members_language(
    sz_program, shenzhen, company, startup_user, django_capture_on_commit_callbacks
):
    from django.utils import translation

    startup_user.preferred_language = "en"
    startup_user.save(update_fields=["preferred_language"])
    app = complete_draft(sz_program, company, startup_user)
    into_review(app, user=startup_user, manager=shenzhen.manager)
    with django_capture_on_commit_callbacks(execute=True), translation.override("zh-hans"):
        review_by(
            app,
            manager=shenzhen.manager,
            reviewers=(shenzhen.reviewer, shenzhen.reviewer2),
            scores={"team": 2, "plan": 2},
            comment="",
            recommend=False,
        )
    app.refresh_from_db()
    assert app.state == "not_recommended"
    (body,) = [m.body for m in mail.outbox if m.to == [startup_user.email]]
    assert body.endswith("0 of 2 reviews recommend.")
