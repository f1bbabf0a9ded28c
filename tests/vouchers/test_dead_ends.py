"""No dead ends (issue #13 item 3): where a step a user would expect is unavailable, the
page says why and until when; an even split of the reviews goes to a tie-break that the
program manager settles; an application no approver of the city may approve is named on
its page and on the staff home."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django.utils import timezone, translation

from portal.audit import SYSTEM
from portal.errors import DomainError
from portal.models import Role, User
from portal.services import membership_grant
from tests.factories import MembershipFactory, UserFactory
from tests.vouchers.conftest import complete_draft, into_review
from vouchers import services
from vouchers.models import Application, Program

pytestmark = pytest.mark.usefixtures("eager_celery")


@pytest.fixture(autouse=True)
def _english(client):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    with translation.override("en"):
        yield


def _review(app, manager, reviewer, *, recommend: bool) -> None:
    services.review_assign(application=app, actor=manager, reviewer=reviewer)
    services.review_declare(application=app, actor=reviewer, conflict=False)
    services.review_submit(
        application=app,
        actor=reviewer,
        scores={"team": 6, "plan": 6},
        comment="",
        recommend=recommend,
    )


@pytest.fixture
def split(sz_program, shenzhen, company, startup_user, django_capture_on_commit_callbacks):
    """A Shenzhen application (two reviews required) whose two reviews disagree. The
    program manager reads e-mail in English."""
    User.objects.filter(pk=shenzhen.manager.pk).update(preferred_language="en")
    app = complete_draft(sz_program, company, startup_user)
    into_review(app, user=startup_user, manager=shenzhen.manager)
    with django_capture_on_commit_callbacks(execute=True):
        _review(app, shenzhen.manager, shenzhen.reviewer, recommend=True)
        _review(app, shenzhen.manager, shenzhen.reviewer2, recommend=False)
    app.refresh_from_db()
    return app


def _page(client, user, app) -> str:
    client.force_login(user)
    return client.get(f"/{app.city.slug}/staff/applications/{app.pk}/").content.decode()


def _notes(page: str) -> str:
    return page.split('id="action-notes"')[1].split("</ul>")[0] if "action-notes" in page else ""


def test_an_even_split_goes_to_a_tie_break_and_the_manager_is_told(split, shenzhen):
    assert split.state == "tie_break"
    (message,) = [m for m in mail.outbox if m.to == [shenzhen.manager.email]]
    assert message.subject == f"[Suanli] Tie-break needed: {split.title}"
    assert "1 of 2 reviews recommend" in message.body


def test_a_reviewer_added_in_the_tie_break_decides_it(client, split, shenzhen):
    page = _page(client, shenzhen.manager, split)
    assert "evenly split" in _notes(page)
    assert f"/shenzhen/staff/applications/{split.pk}/do/break_tie/" in page
    third = UserFactory(email="reviewer3@shenzhen.test")
    MembershipFactory(user=third, city=shenzhen.city, role=Role.REVIEWER)
    _review(split, shenzhen.manager, third, recommend=True)
    split.refresh_from_db()
    assert split.state == "in_notice"
    assert split.timeline.last().note == "2 of 3 reviews recommend."


def test_the_manager_decides_a_tie_with_a_reason(split, shenzhen, startup_user):
    with pytest.raises(DomainError) as err:
        services.application_break_tie(
            application=split, actor=shenzhen.manager, recommend=False, reason=" "
        )
    assert err.value.code == "invalid" and list(err.value.fields) == ["reason"]
    for other in (shenzhen.reviewer, shenzhen.approver):
        with pytest.raises(DomainError) as err:
            services.application_break_tie(
                application=split, actor=other, recommend=True, reason="x"
            )
        assert err.value.code == "forbidden"
    services.application_break_tie(
        application=split, actor=shenzhen.manager, recommend=False, reason="预算有限，方案欠具体"
    )
    split.refresh_from_db()
    assert split.state == "not_recommended"
    assert split.decision_reason == "预算有限，方案欠具体"


def test_the_manager_decides_for_the_recommendation_and_the_notice_opens(split, shenzhen):
    services.application_break_tie(
        application=split, actor=shenzhen.manager, recommend=True, reason="方案可行"
    )
    split.refresh_from_db()
    assert split.state == "in_notice" and split.notice_ends_at is not None


def _into_notice(app, shenzhen, *, reviewers=None):
    into_review(app, user=app.created_by, manager=shenzhen.manager)
    for reviewer in reviewers or (shenzhen.reviewer, shenzhen.reviewer2):
        _review(app, shenzhen.manager, reviewer, recommend=True)
    app.refresh_from_db()
    assert app.state == "in_notice"
    return app


@time_machine.travel(datetime(2026, 12, 1, 0, 0, tzinfo=UTC), tick=False)
def test_the_approver_is_told_when_the_notice_ends_in_the_citys_time(
    client, sz_program, shenzhen, company, startup_user, outsider
):
    """22:43 UTC on 5 December is 06:43 on the 6th in Shenzhen: the page says the 6th,
    with the time zone named, to the approver and to the company."""
    app = _into_notice(complete_draft(sz_program, company, startup_user), shenzhen)
    Application.objects.filter(pk=app.pk).update(
        notice_ends_at=datetime(2026, 12, 5, 22, 43, tzinfo=UTC)
    )
    notes = _notes(_page(client, shenzhen.approver, app))
    assert "it ends at 2026-12-06 06:43 (Asia/Shanghai)" in notes
    assert f"/shenzhen/staff/applications/{app.pk}/do/approve/" not in _page(
        client, shenzhen.approver, app
    )
    client.force_login(startup_user)
    page = client.get(f"/company/applications/{app.pk}/").content.decode()
    assert "public notice until 2026-12-06 06:43 (Asia/Shanghai)" in _notes(page)
    services.objection_raise(
        application=Application.objects.get(pk=app.pk), actor=outsider, text="?"
    )
    with time_machine.travel(datetime(2026, 12, 6, 0, 0, tzinfo=UTC), tick=False):
        notes = _notes(_page(client, shenzhen.approver, app))
        assert "ends at" not in notes
        assert "Resolve the open objections first: 1 is open." in notes


def test_an_approver_who_reviewed_is_told_why_and_the_city_that_no_one_may_approve(
    client, sz_program, shenzhen, company, startup_user
):
    membership_grant(actor=SYSTEM, city=shenzhen.city, user=shenzhen.approver, role=Role.REVIEWER)
    approver = User.objects.get(pk=shenzhen.approver.pk)
    app = _into_notice(
        complete_draft(sz_program, company, startup_user),
        shenzhen,
        reviewers=(approver, shenzhen.reviewer),
    )
    Application.objects.filter(pk=app.pk).update(notice_ends_at=timezone.now())
    notes = _notes(_page(client, approver, app))
    assert "You reviewed this application" in notes and "separation of duties" in notes
    assert "No approver of Shenzhen may approve this application" in notes
    # Everyone on the application's page reads it, and the staff home lists it.
    assert "No approver of Shenzhen" in _notes(_page(client, shenzhen.manager, app))
    client.force_login(shenzhen.auditor)
    home = client.get("/shenzhen/staff/").content.decode()
    assert f'href="/shenzhen/staff/applications/{app.pk}/"' in home
    with pytest.raises(DomainError, match="You reviewed") as err:
        services.application_approve(
            application=app, actor=approver, amount=Decimal("500000"), reason="Scaled to the plan"
        )
    assert err.value.code == "forbidden"
    # The city gives the approver role to someone else: the dead end is gone.
    membership_grant(
        actor=shenzhen.manager,
        city=shenzhen.city,
        user=UserFactory(email="approver2@shenzhen.test"),
        role=Role.APPROVER,
    )
    assert "No approver" not in _notes(_page(client, shenzhen.manager, app))
    client.force_login(shenzhen.auditor)
    home = client.get("/shenzhen/staff/").content.decode()
    assert f'href="/shenzhen/staff/applications/{app.pk}/"' not in home


def test_the_approver_is_told_when_the_budget_cannot_cover_the_minimum_award(
    client, sh_program, shanghai, company, startup_user
):
    app = complete_draft(sh_program, company, startup_user)
    services.application_submit(application=app, actor=startup_user)
    services.application_start_screening(application=app, actor=shanghai.manager)
    services.application_pass_screening(application=app, actor=shanghai.manager)
    Program.objects.filter(pk=sh_program.pk).update(allocated=sh_program.budget - 50000)
    page = _page(client, shanghai.approver, app)
    assert "budget has ¥50,000.00 left, less than its minimum award of ¥100,000.00" in _notes(page)
    assert f"/shanghai/staff/applications/{app.pk}/do/approve/" not in page
    with pytest.raises(DomainError, match="budget") as err:
        services.application_approve(
            application=app,
            actor=shanghai.approver,
            amount=Decimal("100000"),
            reason="Scaled to the plan",
        )
    assert err.value.code == "conflict"


def test_the_manager_is_told_to_assign_more_when_conflicts_leave_too_few_reviewers(
    client, sz_program, shenzhen, company, startup_user
):
    app = complete_draft(sz_program, company, startup_user)
    into_review(app, user=startup_user, manager=shenzhen.manager)
    for reviewer in (shenzhen.reviewer, shenzhen.reviewer2):
        services.review_assign(application=app, actor=shenzhen.manager, reviewer=reviewer)
    services.review_declare(application=app, actor=shenzhen.reviewer2, conflict=True)
    notes = _notes(_page(client, shenzhen.manager, app))
    assert "2 reviews are required but only 1 assigned reviewers" in notes
    assert "assign 1 more" in notes


def test_a_reviewer_whose_review_came_too_late_is_told(client, sz_program, shenzhen, company):
    third = UserFactory(email="reviewer3@shenzhen.test")
    MembershipFactory(user=third, city=shenzhen.city, role=Role.REVIEWER)
    app = complete_draft(sz_program, company, company.members.get())
    into_review(app, user=company.members.get(), manager=shenzhen.manager)
    services.review_assign(application=app, actor=shenzhen.manager, reviewer=third)
    for reviewer in (shenzhen.reviewer, shenzhen.reviewer2):
        _review(app, shenzhen.manager, reviewer, recommend=True)
    assert "Your review is no longer needed" in _notes(_page(client, third, app))


def test_the_tie_break_is_listed_on_the_staff_home(client, split, shenzhen, shanghai):
    client.force_login(shenzhen.reviewer)
    home = client.get("/shenzhen/staff/").content.decode()
    assert "Tie-breaks" in home and f"/shenzhen/staff/applications/{split.pk}/" in home
    client.force_login(shanghai.manager)
    assert client.get("/shenzhen/staff/").status_code == 404
    assert (
        client.post(
            f"/shenzhen/staff/applications/{split.pk}/do/break_tie/",
            {"recommend": "yes", "reason": "x"},
        ).status_code
        == 404
    )
    assert Application.objects.get(pk=split.pk).state == "tie_break"


def test_reminders_reach_a_reviewer_added_in_a_tie_break(split, shenzhen):
    from vouchers.jobs import reminders_send

    third = UserFactory(email="reviewer3@shenzhen.test")
    MembershipFactory(user=third, city=shenzhen.city, role=Role.REVIEWER)
    services.review_assign(application=split, actor=shenzhen.manager, reviewer=third)
    split.reviews.filter(reviewer=third).update(assigned_at=timezone.now() - timedelta(days=6))
    mail.outbox.clear()
    reminders_send()
    assert [m.to for m in mail.outbox] == [[third.email]]


@time_machine.travel(datetime(2026, 12, 1, 0, 0, tzinfo=UTC), tick=False)
def test_the_public_notice_page_gives_the_end_in_the_citys_time(
    client, sz_program, shenzhen, company, startup_user
):
    app = _into_notice(complete_draft(sz_program, company, startup_user), shenzhen)
    Application.objects.filter(pk=app.pk).update(
        notice_ends_at=datetime(2026, 12, 5, 22, 43, tzinfo=UTC)
    )
    page = client.get(f"/shenzhen/programs/{sz_program.slug}/notice/").content.decode()
    assert "2026-12-06 06:43 (Asia/Shanghai)" in page
