"""Blind review (issue #13 item 1): until a reviewer has submitted their own review they
see no other review, score, recommendation or comment; afterwards they do, unless the
program keeps reviews blind. Program managers, approvers and auditors see them all.
Checked on the application page, in the queue's column (and its sort) and on the
ranking, the places scores appear."""

from __future__ import annotations

import pytest
from django.utils import translation

from portal.models import Role, User
from tests.factories import MembershipFactory, UserFactory
from tests.vouchers.conftest import complete_draft, into_review
from vouchers import services, workflow
from vouchers.models import Program

pytestmark = pytest.mark.usefixtures("eager_celery")

SECRET = "团队背景扎实-SECRET-COMMENT"


@pytest.fixture
def panel(sz_program, shenzhen, company, startup_user):
    """A Shenzhen application (two reviews required) with three reviewers assigned; the
    first has submitted (team 9, plan 8: total 25, with a comment), the other two not."""
    third = UserFactory(email="reviewer3@shenzhen.test")
    MembershipFactory(user=third, city=shenzhen.city, role=Role.REVIEWER)
    app = complete_draft(sz_program, company, startup_user)
    into_review(app, user=startup_user, manager=shenzhen.manager)
    for reviewer in (shenzhen.reviewer, shenzhen.reviewer2, third):
        services.review_assign(application=app, actor=shenzhen.manager, reviewer=reviewer)
    services.review_declare(application=app, actor=shenzhen.reviewer, conflict=False)
    services.review_submit(
        application=app,
        actor=shenzhen.reviewer,
        scores={"team": 9, "plan": 8},
        comment=SECRET,
        recommend=True,
    )
    return app, third


def _page(client, user, app) -> str:
    client.force_login(user)
    response = client.get(f"/shenzhen/staff/applications/{app.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def _queue(client, user, sort="-average") -> str:
    client.force_login(user)
    return client.get(f"/shenzhen/staff/applications/?sort={sort}").content.decode()


def _ranking(client, user, program) -> str:
    client.force_login(user)
    return client.get(f"/shenzhen/staff/programs/{program.slug}/ranking/").content.decode()


def _shows_scores(page: str) -> bool:
    return SECRET in page or "25.00" in page or "25.0<" in page


def test_a_reviewer_sees_no_other_review_before_submitting_their_own(client, panel, shenzhen):
    app, _third = panel
    reviewer2 = shenzhen.reviewer2
    page = _page(client, reviewer2, app)
    assert SECRET not in page and "25.00" not in page
    assert shenzhen.reviewer.email not in page.split('id="reviews-hidden"')[1].split("</table>")[0]
    assert 'id="reviews-hidden"' in page  # the page says why the table is short
    queue = _queue(client, reviewer2)
    assert "25.0" not in queue
    ranking = _ranking(client, reviewer2, app.program)
    assert "25.00" not in ranking
    # After declaring (no conflict) but before scoring: still nothing.
    services.review_declare(application=app, actor=reviewer2, conflict=False)
    assert not _shows_scores(_page(client, reviewer2, app))
    assert not workflow.reviews_visible(app, reviewer2)


def test_a_reviewer_sees_the_others_after_submitting(client, panel, shenzhen):
    app, third = panel
    services.review_declare(application=app, actor=third, conflict=False)
    services.review_submit(
        application=app, actor=third, scores={"team": 1, "plan": 1}, comment="", recommend=False
    )
    page = _page(client, third, app)
    assert SECRET in page and "25.00" in page
    assert 'id="reviews-hidden"' not in page
    assert "14.0" in _queue(client, third)  # the average of 25 and 3


def test_a_program_may_keep_reviews_blind_to_reviewers_altogether(client, panel, shenzhen):
    app, third = panel
    Program.objects.filter(pk=app.program_id).update(reviews_blind=True)
    services.review_declare(application=app, actor=third, conflict=False)
    services.review_submit(
        application=app, actor=third, scores={"team": 1, "plan": 1}, comment="", recommend=False
    )
    page = _page(client, third, app)
    assert SECRET not in page and "25.00" not in page
    assert "3.00" in page  # their own review is still shown
    assert "14.0" not in _queue(client, third)
    assert "14.00" not in _ranking(client, third, app.program)
    # Program managers, approvers and auditors see every review.
    for user in (shenzhen.manager, shenzhen.approver, shenzhen.auditor):
        page = _page(client, user, app)
        assert SECRET in page and "25.00" in page and "3.00" in page, user.email
        assert "14.0" in _queue(client, user), user.email
        assert "14.00" in _ranking(client, user, app.program), user.email


def test_managers_approvers_and_auditors_see_all_reviews(client, panel, shenzhen):
    app, _third = panel
    for user in (shenzhen.manager, shenzhen.approver, shenzhen.auditor):
        assert _shows_scores(_page(client, user, app)), user.email
        assert "25.0" in _queue(client, user), user.email


def test_a_manager_assigned_as_reviewer_is_blind_until_submitting(client, panel, shenzhen):
    """Whatever other role a reviewer holds, their own pending review keeps them blind."""
    app, _third = panel
    MembershipFactory(user=shenzhen.manager, city=shenzhen.city, role=Role.REVIEWER)
    manager = User.objects.get(pk=shenzhen.manager.pk)  # roles are cached on the object
    services.review_assign(application=app, actor=manager, reviewer=manager)
    assert not _shows_scores(_page(client, manager, app))
    assert "25.0" not in _queue(client, manager)
    assert "25.00" not in _ranking(client, manager, app.program)


def test_sorting_the_queue_by_score_reveals_nothing_to_a_blind_reviewer(
    client, panel, shenzhen, company, startup_user, sz_program
):
    """Sorted by average score, the rows a reviewer may not score-read sort as unscored:
    the order does not tell which application scored higher."""
    app, _third = panel
    from vouchers import selectors

    rows = list(
        selectors.application_queue_list(
            city=shenzhen.city, user=shenzhen.reviewer2, filters={"sort": "-average"}
        )
    )
    assert [(r.pk, r.average, r.scores_visible) for r in rows] == [(app.pk, None, False)]
    rows = list(
        selectors.application_queue_list(
            city=shenzhen.city, user=shenzhen.manager, filters={"sort": "-average"}
        )
    )
    assert [(r.pk, r.average, r.scores_visible) for r in rows] == [(app.pk, 25, True)]


def test_the_review_tally_in_the_timeline_is_hidden_from_a_blind_reviewer(client, panel, shenzhen):
    """Two of three reviewers conclude the application; the third, who never submitted,
    does not read the tally in the timeline."""
    app, third = panel
    services.review_declare(application=app, actor=shenzhen.reviewer2, conflict=False)
    with translation.override("en"):
        services.review_submit(
            application=app,
            actor=shenzhen.reviewer2,
            scores={"team": 5, "plan": 5},
            comment="",
            recommend=True,
        )
    app.refresh_from_db()
    assert app.state == "in_notice"
    # Stored in English, shown in the page's language (Chinese here, vouchers.notes).
    assert app.timeline.last().note == "2 of 2 reviews recommend."
    tally = "2 份评审中有 2 份推荐。"
    page = _page(client, third, app)
    assert tally not in page and "reviews recommend" not in page and SECRET not in page
    assert tally in _page(client, shenzhen.manager, app)


def test_staff_of_the_applicant_company_see_none_of_its_reviews(client, panel, shenzhen, company):
    app, _third = panel
    company.members.add(shenzhen.approver)
    assert not _shows_scores(_page(client, shenzhen.approver, app))
    assert "25.0" not in _queue(client, shenzhen.approver)
