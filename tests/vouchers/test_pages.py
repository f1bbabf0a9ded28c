"""Every page of the workflow renders, in both languages, in every state an application
can be in, for each party; and offers only the actions the transition table allows."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from tests.factories import UserFactory
from tests.vouchers.conftest import RUBRIC, complete_draft, program_values
from vouchers import services
from vouchers.models import Application, ApplicationState

# The buttons each page shows, written out here rather than read from the transition
# table or `services.application_actions` (which the templates use): for each state, the
# staff buttons by role, and the state's buttons on the applicant's page. The program
# has one review and a public notice; `reviewer` is assigned, `reviewer2` is not, and
# nothing stands in the way of approval once in notice (no end date, no objection).
STAFF_BUTTONS = [
    "start_screening",
    "pass_screening",
    "fail_screening",
    "request_info",
    "assign",
    "declare",
    "approve",
    "reject",
    "break_tie",
]
SCREENING = {"pass_screening", "fail_screening", "request_info"}
STAFF_SHOWN = {
    "submitted": {
        "reviewer": {"start_screening"},
        "reviewer2": {"start_screening"},
        "manager": {"start_screening", "assign"},
    },
    "screening": {
        "reviewer": SCREENING,
        "reviewer2": SCREENING,
        "manager": SCREENING | {"assign"},
    },
    "in_review": {
        "reviewer": {"request_info", "declare"},
        "reviewer2": {"request_info"},
        "manager": {"request_info", "assign"},
    },
    "tie_break": {"reviewer": {"declare"}, "manager": {"assign", "break_tie"}},
    "info_requested": {"manager": {"assign"}},
    "recommended": {"approver": {"approve", "reject"}},
    "not_recommended": {"approver": {"reject"}},
    "in_notice": {"approver": {"approve", "reject"}},
    "awarded": {},
    "approved": {},
    "rejected": {},
    "withdrawn": {},
    "declined": {},
    "lapsed": {},
}
BEFORE_DECISION = [
    "submitted",
    "screening",
    "in_review",
    "tie_break",
    "info_requested",
    "recommended",
    "not_recommended",
    "in_notice",
]
MEMBER_SHOWN = {
    "draft": {"submit"},  # a draft is simply left; the page offers no withdrawal
    **{state: {"withdraw"} for state in BEFORE_DECISION},
    "info_requested": {"withdraw", "answer_info"},
    "awarded": set(),
    "approved": set(),
    "rejected": set(),
    "withdrawn": set(),
    "declined": set(),
    "lapsed": set(),
}


@pytest.fixture
def program(shanghai):
    return services.program_save(
        city=shanghai.city,
        actor=shanghai.manager,
        values=program_values(reviews_required=1, rubric=RUBRIC, notice_days=5),
    )


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_every_page_renders_in_every_state(
    client, program, shanghai, company, startup_user, language
):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    app = complete_draft(program, company, startup_user)
    services.application_submit(application=app, actor=startup_user)
    services.review_assign(application=app, actor=shanghai.manager, reviewer=shanghai.reviewer)
    staff_url = f"/shanghai/staff/applications/{app.pk}/"
    assert set(MEMBER_SHOWN) == set(ApplicationState.values)
    assert set(STAFF_SHOWN) == set(ApplicationState.values) - {"draft"}
    for state in ApplicationState.values:
        Application.objects.filter(pk=app.pk).update(state=state)
        client.force_login(startup_user)
        for step in ("", "?step=project", "?step=plan", "?step=amount", "?step=documents"):
            response = client.get(f"/company/applications/{app.pk}/{step}")
            assert response.status_code == 200, (state, step)
        page = client.get(f"/company/applications/{app.pk}/?step=review").content.decode()
        for action in ("submit", "withdraw", "answer_info"):
            url = reverse("vouchers:application_action", kwargs={"pk": app.pk, "action": action})
            assert (url in page) == (action in MEMBER_SHOWN[state]), (state, action)
        assert client.get("/company/").status_code == 200
        for role in ("reviewer", "reviewer2", "approver", "manager", "auditor"):
            client.force_login(getattr(shanghai, role))
            response = client.get(staff_url)
            if state == ApplicationState.DRAFT:
                assert response.status_code == 404
                continue
            assert response.status_code == 200, (state, role)
            page = response.content.decode()
            shown = {
                action
                for action in STAFF_BUTTONS
                if reverse(
                    "vouchers:staff_action",
                    kwargs={"city_slug": "shanghai", "pk": app.pk, "action": action},
                )
                in page
            }
            assert shown == STAFF_SHOWN[state].get(role, set()), (state, role)
    for user in shanghai.staff():
        client.force_login(user)
        for path in (
            "/shanghai/staff/applications/",
            "/shanghai/staff/programs/",
            f"/shanghai/staff/programs/{program.slug}/ranking/",
        ):
            assert client.get(path).status_code == 200, (path, user.email)
    client.force_login(shanghai.manager)
    assert client.get(f"/shanghai/staff/programs/{program.slug}/").status_code == 200
    assert client.get("/shanghai/staff/programs/new/").status_code == 200
    for path in ("/shanghai/programs/", f"/shanghai/programs/{program.slug}/"):
        assert client.get(path).status_code == 200
    assert client.get(f"/shanghai/programs/{program.slug}/notice/").status_code == 200


def test_an_approver_who_reviewed_is_not_offered_approval(
    client, program, shanghai, company, startup_user
):
    from tests.factories import MembershipFactory

    MembershipFactory(user=shanghai.approver, city=shanghai.city, role="reviewer")
    app = complete_draft(program, company, startup_user)
    services.application_submit(application=app, actor=startup_user)
    services.application_start_screening(application=app, actor=shanghai.manager)
    services.application_pass_screening(application=app, actor=shanghai.manager)
    services.review_assign(application=app, actor=shanghai.manager, reviewer=shanghai.approver)
    services.review_declare(application=app, actor=shanghai.approver, conflict=False)
    services.review_submit(
        application=app,
        actor=shanghai.approver,
        scores={"team": 9, "plan": 9},
        comment="ok",
        recommend=True,
    )
    app.refresh_from_db()
    assert app.state == "in_notice"
    Application.objects.filter(pk=app.pk).update(notice_ends_at=timezone.now())
    approve = f"/shanghai/staff/applications/{app.pk}/do/approve/"
    client.force_login(shanghai.approver)
    assert approve not in client.get(f"/shanghai/staff/applications/{app.pk}/").content.decode()
    assert "reject" in services.application_actions(app, shanghai.approver)
    other = UserFactory(email="approver2@shanghai.test")
    MembershipFactory(user=other, city=shanghai.city, role="approver")
    client.force_login(other)
    assert approve in client.get(f"/shanghai/staff/applications/{app.pk}/").content.decode()


def test_the_timeline_names_states_in_the_readers_language_and_staff_only_to_staff(
    client, program, shanghai, company, startup_user
):
    app = complete_draft(program, company, startup_user)
    services.application_submit(application=app, actor=startup_user)
    services.application_start_screening(application=app, actor=shanghai.manager)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    client.force_login(startup_user)
    page = client.get(f"/company/applications/{app.pk}/").content.decode()
    timeline = page[page.index('class="timeline"') :]
    assert "<strong>形式审查中</strong>" in timeline
    assert "<strong>screening</strong>" not in timeline
    assert shanghai.manager.email not in page
    client.force_login(shanghai.reviewer)
    page = client.get(f"/shanghai/staff/applications/{app.pk}/").content.decode()
    assert shanghai.manager.email in page[page.index('class="timeline"') :]


def test_approval_is_offered_only_after_the_notice_and_its_objections(
    client, program, shanghai, company, startup_user, outsider
):
    app = complete_draft(program, company, startup_user)
    services.application_submit(application=app, actor=startup_user)
    services.application_start_screening(application=app, actor=shanghai.manager)
    services.application_pass_screening(application=app, actor=shanghai.manager)
    services.review_assign(application=app, actor=shanghai.manager, reviewer=shanghai.reviewer)
    services.review_declare(application=app, actor=shanghai.reviewer, conflict=False)
    services.review_submit(
        application=app,
        actor=shanghai.reviewer,
        scores={"team": 9, "plan": 9},
        comment="",
        recommend=True,
    )
    objection = services.objection_raise(
        application=Application.objects.get(pk=app.pk), actor=outsider, text="关联"
    )

    def offered() -> bool:
        return "approve" in services.application_actions(
            Application.objects.get(pk=app.pk), shanghai.approver
        )

    assert not offered()  # notice running
    Application.objects.filter(pk=app.pk).update(notice_ends_at=timezone.now())
    assert not offered()  # an objection is open
    services.objection_resolve(objection=objection, actor=shanghai.manager, resolution="无关联")
    assert offered()


def test_a_refused_approval_says_why_once_without_a_field_code(
    client, shanghai, company, startup_user
):
    """The service's refusal named the field too ({"reason": [its message]}); the page
    showed the message twice, the second time after the code "reason:" (English in a
    Chinese page). Now once."""
    program = services.program_save(  # no reviews, no notice: straight to approval
        city=shanghai.city, actor=shanghai.manager, values=program_values()
    )
    app = complete_draft(program, company, startup_user, amount="500000.00")
    services.application_submit(application=app, actor=startup_user)
    services.application_start_screening(application=app, actor=shanghai.reviewer)
    services.application_pass_screening(application=app, actor=shanghai.reviewer)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    client.force_login(shanghai.approver)
    response = client.post(
        f"/shanghai/staff/applications/{app.pk}/do/approve/",
        {"amount": "250000", "reason": ""},
        follow=True,
    )
    errors = [str(m) for m in response.context["messages"] if m.level_tag == "error"]
    assert errors == ["核定金额低于申请的 ¥500,000.00，请说明理由。"]
    assert Application.objects.get(pk=app.pk).state == ApplicationState.RECOMMENDED
