"""The ranking (issue #13 item 2): only applications with every required review in are
ranked; the others are listed apart as not yet scored, with how many reviews are
missing; equal scores share a rank (1, 2, 2, 4); the score's formula is on the page."""

from __future__ import annotations

import random
import re

import pytest
from django.utils import translation

from portal.models import Role
from tests.factories import MembershipFactory, UserFactory
from tests.vouchers.conftest import complete_draft, into_review
from vouchers import selectors, services
from vouchers.credit_code import credit_code_generate

pytestmark = pytest.mark.usefixtures("eager_celery")

_rng = random.Random(13)


def _application(program, user, manager, name):
    company = services.company_create(
        actor=user, legal_name=name, credit_code=credit_code_generate(_rng)
    )
    app = complete_draft(program, company, user)
    into_review(app, user=user, manager=manager)
    return app


def _review(app, manager, reviewer, team, plan):
    services.review_assign(application=app, actor=manager, reviewer=reviewer)
    services.review_declare(application=app, actor=reviewer, conflict=False)
    services.review_submit(
        application=app,
        actor=reviewer,
        scores={"team": team, "plan": plan},
        comment="",
        recommend=True,
    )


@pytest.fixture
def field(sz_program, shenzhen, startup_user):
    """Shenzhen's program (two reviews; rubric team ×1 and plan ×2, at most 30).
    Scores are team + 2 × plan per review, and an application's the mean of two:
    甲 29, 乙 26 (26 and 26), 丙 26 (27 and 25, a tie with 乙 by the mean), 丁 20;
    戊 has one review of two (30), 己 none."""
    r1, r2, manager = shenzhen.reviewer, shenzhen.reviewer2, shenzhen.manager
    apps = {
        name: _application(sz_program, startup_user, manager, name)
        for name in ("甲公司", "乙公司", "丙公司", "丁公司", "戊公司", "己公司")
    }
    for name, first, second in (
        ("甲公司", (9, 10), (9, 10)),
        ("乙公司", (8, 9), (8, 9)),
        ("丙公司", (9, 9), (7, 9)),
        ("丁公司", (6, 7), (6, 7)),
    ):
        _review(apps[name], manager, r1, *first)
        _review(apps[name], manager, r2, *second)
    _review(apps["戊公司"], manager, r1, 10, 10)
    return apps


def test_only_complete_applications_are_ranked_and_ties_share_a_rank(field, sz_program, shenzhen):
    ranked = selectors.application_ranking_list(program=sz_program, user=shenzhen.manager)
    assert [(a.company.legal_name, a.rank, a.average) for a in ranked] == [
        ("甲公司", 1, 29),
        ("乙公司", 2, 26),
        ("丙公司", 2, 26),
        ("丁公司", 4, 20),
    ]
    unscored = selectors.application_unscored_list(program=sz_program)
    assert [(a.company.legal_name, a.review_count, a.missing) for a in unscored] == [
        ("戊公司", 1, 1),
        ("己公司", 0, 2),
    ]


def test_the_ranking_page_lists_the_unscored_apart_and_shows_the_formula(
    client, field, sz_program, shenzhen, django_assert_max_num_queries
):
    client.force_login(shenzhen.approver)
    # The layout's own queries and one per list: none per row.
    with translation.override("en"), django_assert_max_num_queries(14):
        page = client.get(
            f"/shenzhen/staff/programs/{sz_program.slug}/ranking/", HTTP_ACCEPT_LANGUAGE="en"
        ).content.decode()
    ranked, unscored = page.split('id="unscored"')
    ranked = ranked.split('id="ranked"')[1]
    rows = re.findall(r"<tr><td[^>]*>(\d+)</td><td[^>]*>([^<]+)</td>", ranked)
    assert rows == [("1", "甲公司"), ("2", "乙公司"), ("2", "丙公司"), ("4", "丁公司")]
    assert "戊公司" not in ranked and "己公司" not in ranked
    assert "戊公司" in unscored and "己公司" in unscored
    assert re.search(r"戊公司.*?1 / 2</td><td class=\"money\">1</td>", unscored, re.S)
    assert re.search(r"己公司.*?0 / 2</td><td class=\"money\">2</td>", unscored, re.S)
    # The formula, in symbols and with this rubric's maximum.
    assert "Σ wᵢ × sᵢ" in page and "Σ wᵢ × maxᵢ = 30" in page
    assert "96.7%" in page  # 甲: 29 of 30


def test_a_blind_reviewer_is_told_how_many_ranked_applications_are_hidden(
    client, field, sz_program, shenzhen
):
    third = UserFactory(email="reviewer3@shenzhen.test")
    MembershipFactory(user=third, city=shenzhen.city, role=Role.REVIEWER)
    client.force_login(third)
    page = client.get(f"/shenzhen/staff/programs/{sz_program.slug}/ranking/").content.decode()
    assert 'id="ranking-hidden"' in page and "甲公司" not in page.split('id="unscored"')[0]
    assert "有 4 份已评分的申请未向您显示" in page  # in the default language, Chinese
    assert "评分如何计算" in page
    assert selectors.application_ranking_hidden_count(program=sz_program, user=third) == 4


def test_a_program_without_reviews_ranks_nothing(
    client, sh_program, shanghai, company, startup_user
):
    app = complete_draft(sh_program, company, startup_user)
    services.application_submit(application=app, actor=startup_user)
    assert list(selectors.application_ranking_list(program=sh_program, user=shanghai.manager)) == []
    client.force_login(shanghai.manager)
    response = client.get(f"/shanghai/staff/programs/{sh_program.slug}/ranking/")
    assert response.status_code == 200
    assert 'id="ranked"' not in response.content.decode()


def test_another_citys_staff_get_404_on_the_ranking(client, field, sz_program, shanghai):
    client.force_login(shanghai.manager)
    assert client.get(f"/shenzhen/staff/programs/{sz_program.slug}/ranking/").status_code == 404
