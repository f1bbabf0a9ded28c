"""Every page of the workflow, tried by another city's staff and by a member of another
company: each answers 404 and nothing in the database changes. Also: list pages run a
number of queries that does not depend on how many rows they show."""

from __future__ import annotations

import random

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext

from portal.models import AuditEvent
from tests.factories import UserFactory
from tests.vouchers.conftest import RUBRIC, complete_draft, program_values
from vouchers import services
from vouchers.credit_code import credit_code_generate
from vouchers.models import Application, Program

STAFF_ACTIONS = [
    "start_screening",
    "pass_screening",
    "fail_screening",
    "reject",
    "request_info",
    "approve",
    "assign",
    "declare",
    "score",
    "resolve",
]
STAFF_POST = {
    "reason": "x",
    "question": "x",
    "amount": "200000",
    "conflict": "",
    "note": "",
    "comment": "x",
    "recommend": "on",
    "resolution": "x",
    "team": "5",
    "plan": "5",
}


def snapshot() -> dict:
    """Row counts of every model of the vouchers app and the audit trail, plus the
    fields a stray write would most likely touch."""
    state = {
        model.__name__: model.objects.count()
        for model in apps.get_app_config("vouchers").get_models()
    }
    state["audit"] = AuditEvent.objects.count()
    state["applications"] = list(
        Application.objects.order_by("pk").values_list(
            "pk", "state", "title", "requested_amount", "awarded_amount", "eligibility"
        )
    )
    state["programs"] = list(
        Program.objects.order_by("pk").values_list(
            "pk", "name_en", "status", "budget", "allocated", "award_max"
        )
    )
    return state


@pytest.fixture
def sh_world(shanghai, startup_user, company):
    """A Shanghai program with review and notice, one application in review with a
    document, an objection on another in notice, and an open invitation."""
    program = services.program_save(
        city=shanghai.city,
        actor=shanghai.manager,
        values=program_values(reviews_required=1, rubric=RUBRIC, notice_days=5),
    )
    app = complete_draft(program, company, startup_user)
    services.application_submit(application=app, actor=startup_user)
    services.application_start_screening(application=app, actor=shanghai.manager)
    services.application_pass_screening(application=app, actor=shanghai.manager)
    services.review_assign(application=app, actor=shanghai.manager, reviewer=shanghai.reviewer)

    other = services.company_create(
        actor=startup_user,
        legal_name="第二公司",
        credit_code=credit_code_generate(random.Random(77)),
    )
    noticed = complete_draft(program, other, startup_user)
    services.application_submit(application=noticed, actor=startup_user)
    services.application_start_screening(application=noticed, actor=shanghai.manager)
    services.application_pass_screening(application=noticed, actor=shanghai.manager)
    services.review_assign(application=noticed, actor=shanghai.manager, reviewer=shanghai.reviewer2)
    services.review_declare(application=noticed, actor=shanghai.reviewer2, conflict=False)
    services.review_submit(
        application=noticed,
        actor=shanghai.reviewer2,
        scores={"team": 8, "plan": 9},
        comment="好",
        recommend=True,
    )
    noticed.refresh_from_db()
    assert noticed.state == "in_notice"
    objection = services.objection_raise(
        application=noticed, actor=UserFactory(email="citizen@example.cn"), text="质疑"
    )
    invitation = services.company_invite(
        company=company, actor=startup_user, email="colleague@startup.test"
    )
    return {
        "program": program,
        "app": app,
        "noticed": noticed,
        "objection": objection,
        "document": app.documents.get(),
        "invitation": invitation,
    }


def test_another_citys_staff_get_404_on_every_staff_page_and_change_nothing(
    client, sh_world, shenzhen
):
    program, app, noticed = sh_world["program"], sh_world["app"], sh_world["noticed"]
    base = "/shanghai/staff"
    before = snapshot()
    for user in (shenzhen.manager, shenzhen.approver, shenzhen.reviewer, shenzhen.auditor):
        client.force_login(user)
        for path in (
            f"{base}/applications/",
            f"{base}/applications/?state=in_review",
            f"{base}/applications/{app.pk}/",
            f"{base}/applications/{app.pk}/documents/{sh_world['document'].pk}/",
            f"{base}/programs/",
            f"{base}/programs/new/",
            f"{base}/programs/{program.slug}/",
            f"{base}/programs/{program.slug}/ranking/",
        ):
            assert client.get(path).status_code == 404, (user.email, path)
        assert (
            client.post(
                f"{base}/applications/",
                {"reviewer": shenzhen.reviewer.pk, "applications": [app.pk, noticed.pk]},
            ).status_code
            == 404
        )
        for target in (app, noticed):
            for action in STAFF_ACTIONS:
                data = {
                    **STAFF_POST,
                    "reviewer": shenzhen.reviewer.pk,
                    "objection": sh_world["objection"].pk,
                }
                response = client.post(f"{base}/applications/{target.pk}/do/{action}/", data)
                assert response.status_code == 404, (user.email, action)
        for path in (f"{base}/programs/{program.slug}/", f"{base}/programs/new/"):
            data = program_values(slug="hijack", name_en="Hijacked")
            for name in ("rubric", "required_documents", "eligibility_rules"):
                data.pop(name)
            data |= {
                f"{p}-{k}": "0"
                for p in ("rubric", "docs", "rules")
                for k in ("TOTAL_FORMS", "INITIAL_FORMS")
            }
            assert client.post(path, data).status_code == 404, path
    assert snapshot() == before


def test_a_member_of_another_company_gets_404_on_every_company_page_and_changes_nothing(
    client, sh_world, outsider, shanghai
):
    app = sh_world["app"]
    services.company_create(
        actor=outsider, legal_name="别家公司", credit_code=credit_code_generate(random.Random(3))
    )
    before = snapshot()
    client.force_login(outsider)
    base = f"/company/applications/{app.pk}"
    for step in ("", "?step=project", "?step=plan", "?step=amount", "?step=documents"):
        assert client.get(f"{base}/{step}").status_code == 404, step
        assert client.post(f"{base}/{step}", {"title": "hijack"}).status_code == 404, step
    assert client.get(f"{base}/documents/{sh_world['document'].pk}/").status_code == 404
    for action in ("submit", "withdraw", "answer_info"):
        response = client.post(f"{base}/{action}/", {"confirm": "yes", "answer": "x"})
        assert response.status_code == 404, action
    company = app.company
    assert client.get(f"/company/{company.pk}/").status_code == 404
    assert client.post(f"/company/{company.pk}/", {"email": "x@y.cn"}).status_code == 404
    # An invitation is for the address it was sent to.
    token = sh_world["invitation"].token
    assert client.post(f"/company/join/{token}/").status_code == 404
    # Applying to a program with someone else's company.
    program = sh_world["program"]
    assert (
        client.post(f"/shanghai/programs/{program.slug}/", {"company": company.pk}).status_code
        == 404
    )
    assert "第二公司" not in client.get("/company/").content.decode()
    assert snapshot() == before
    assert not company.members.filter(pk=outsider.pk).exists()


def test_a_city_page_never_reaches_another_citys_program_or_application(
    client, sh_world, sz_program, outsider
):
    """Shenzhen's program has the same slug: Shenzhen's pages must not act on Shanghai's
    application in notice."""
    before = snapshot()
    client.force_login(outsider)
    noticed = sh_world["noticed"]
    response = client.post(
        f"/shenzhen/programs/{sz_program.slug}/notice/",
        {"application": noticed.pk, "text": "跨城质疑"},
    )
    assert response.status_code == 404
    assert (
        "第二公司"
        not in client.get(f"/shenzhen/programs/{sz_program.slug}/notice/").content.decode()
    )
    assert (
        "第二公司" in client.get(f"/shanghai/programs/{sz_program.slug}/notice/").content.decode()
    )
    assert snapshot() == before


def test_the_auditor_reads_everything_and_changes_nothing(client, sh_world, shanghai):
    app = sh_world["app"]
    before = snapshot()
    client.force_login(shanghai.auditor)
    assert client.get(f"/shanghai/staff/applications/{app.pk}/").status_code == 200
    assert client.get("/shanghai/staff/applications/").status_code == 200
    for action in STAFF_ACTIONS:
        data = {
            **STAFF_POST,
            "reviewer": shanghai.reviewer.pk,
            "objection": sh_world["objection"].pk,
        }
        client.post(f"/shanghai/staff/applications/{app.pk}/do/{action}/", data)
    # Same city, no program-manager role: refused (403), as everywhere in the portal.
    assert client.get(f"/shanghai/staff/programs/{sh_world['program'].slug}/").status_code == 403
    assert snapshot() == before


def _fill(program, city_world, n: int, seed: int) -> None:
    rng = random.Random(seed)
    for i in range(n):
        user = UserFactory(email=f"q{seed}-{i}@startup.test")
        company = services.company_create(
            actor=user, legal_name=f"队列公司{seed}-{i}", credit_code=credit_code_generate(rng)
        )
        app = complete_draft(program, company, user)
        services.application_submit(application=app, actor=user)
        services.application_start_screening(application=app, actor=city_world.manager)
        services.application_pass_screening(application=app, actor=city_world.manager)
        services.review_assign(
            application=app, actor=city_world.manager, reviewer=city_world.reviewer
        )
        services.review_assign(
            application=app, actor=city_world.manager, reviewer=city_world.reviewer2
        )


def _queries(client, path: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(path).status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize(
    "path",
    [
        "/shanghai/staff/applications/",
        "/shanghai/staff/applications/?sort=-requested_amount&state=in_review&eligibility=pass",
        "/shanghai/staff/applications/?q=队列公司",
        "/shanghai/staff/programs/compute-2026/ranking/",
    ],
)
def test_list_pages_run_the_same_queries_for_3_or_15_rows(
    client, shanghai, path, django_assert_max_num_queries
):
    program = services.program_save(
        city=shanghai.city,
        actor=shanghai.manager,
        values=program_values(reviews_required=2, rubric=RUBRIC),
    )
    client.force_login(shanghai.manager)
    _fill(program, shanghai, 3, seed=1)
    few = _queries(client, path)
    _fill(program, shanghai, 12, seed=2)
    with django_assert_max_num_queries(few):
        response = client.get(path)
    assert response.content.decode().count("队列公司") >= 15


def test_company_home_runs_the_same_queries_for_few_or_many_applications(
    client, sh_program, startup_user, company
):
    client.force_login(startup_user)
    complete_draft(sh_program, company, startup_user)
    few = _queries(client, "/company/")
    rng = random.Random(8)
    for i in range(6):
        other = services.company_create(
            actor=startup_user, legal_name=f"子公司{i}", credit_code=credit_code_generate(rng)
        )
        complete_draft(sh_program, other, startup_user)
    assert _queries(client, "/company/") <= few


def test_queue_sorts_by_average_score_with_unscored_last(client, shanghai):
    program = services.program_save(
        city=shanghai.city,
        actor=shanghai.manager,
        values=program_values(reviews_required=2, rubric=RUBRIC),
    )
    _fill(program, shanghai, 3, seed=4)
    low, high, unscored = Application.objects.order_by("pk")
    for app, score in ((low, 3), (high, 9)):
        services.review_declare(application=app, actor=shanghai.reviewer, conflict=False)
        services.review_submit(
            application=app,
            actor=shanghai.reviewer,
            scores={"team": score, "plan": score},
            comment="",
            recommend=True,
        )
    client.force_login(shanghai.manager)
    page = client.get("/shanghai/staff/applications/?sort=-average").content.decode()
    names = [a.company.legal_name for a in (high, low, unscored)]
    positions = [page.index(n) for n in names]
    assert positions == sorted(positions)


def test_queue_pages_keep_their_filters(client, shanghai, monkeypatch):
    from portal.http import page_of

    monkeypatch.setattr(page_of, "__defaults__", (2,))  # two applications a page
    program = services.program_save(
        city=shanghai.city,
        actor=shanghai.manager,
        values=program_values(reviews_required=2, rubric=RUBRIC),
    )
    _fill(program, shanghai, 5, seed=6)
    client.force_login(shanghai.manager)
    first = client.get("/shanghai/staff/applications/?state=in_review&sort=company__legal_name")
    page = first.content.decode()
    assert "队列公司6-0" in page and "队列公司6-2" not in page
    assert "state=in_review" in page and "page=2" in page
    second = client.get(
        "/shanghai/staff/applications/?state=in_review&sort=company__legal_name&page=2"
    ).content.decode()
    assert "队列公司6-2" in second and "队列公司6-0" not in second
