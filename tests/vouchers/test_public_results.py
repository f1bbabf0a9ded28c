"""The public results page (结果公示, issue #12 item 9): a program's awarded companies,
amounts and decision dates once each award's notice has ended, nothing unpublished,
nothing of another city, and a 404 for a draft program or one that keeps its results
from the public."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.vouchers.conftest import make_company, make_program
from vouchers import services
from vouchers.models import Application, ApplicationState, Document, Review

S = ApplicationState
DAY = timedelta(days=1)


def _app(program, company, user, state, **fields) -> Application:
    return Application.objects.create(
        city=program.city,
        program=program,
        company=company,
        created_by=user,
        state=state,
        title="机密项目标题",
        requested_amount=Decimal("777777.00"),
        **fields,
    )


@pytest.fixture
def results(world, startup_user):
    """Shanghai's program with two awards public and the rest not (yet); Shenzhen's with
    one award of its own."""
    sh, sz = world["shanghai"], world["shenzhen"]
    now = timezone.now()
    program = make_program(sh.city, notice_days=5)
    shown_a = make_company(startup_user, name="公示甲科技有限公司", code="91310000MA1FL8TQ2X")
    shown_b = make_company(startup_user, name="公示乙智能有限公司", code="91310000MA1FL9TQ2X")
    hidden = make_company(startup_user, name="未公示丙有限公司", code="91310000MA1FLATQ2X")
    a = _app(
        program,
        shown_a,
        startup_user,
        S.APPROVED,
        awarded_amount=Decimal("300000.00"),
        notice_ends_at=now - 2 * DAY,
        # 00:30 on 2 March in Shanghai, still 1 March in UTC.
        decided_at=datetime(2026, 3, 1, 16, 30, tzinfo=UTC),
    )
    _app(
        program,
        shown_b,
        startup_user,
        S.APPROVED,
        awarded_amount=Decimal("200000.50"),
        decided_at=now - DAY,
    )  # a program without notice at the time: no notice to wait for
    # Not published: an approval whose notice has not ended, and every undecided or
    # unsuccessful state.
    _app(
        program,
        hidden,
        startup_user,
        S.APPROVED,
        awarded_amount=Decimal("900000.00"),
        notice_ends_at=now + DAY,
        decided_at=now,
    )
    for state in (S.IN_NOTICE, S.RECOMMENDED, S.REJECTED, S.SUBMITTED, S.WITHDRAWN):
        _app(program, hidden, startup_user, state, awarded_amount=Decimal("900000.00"))
    # What the page must never show: documents, scores, the people.
    Document.objects.create(
        application=a,
        doc_type="business_licence",
        file=SimpleUploadedFile("x.pdf", b"%PDF-1.7"),
        original_name="营业执照机密.pdf",
        content_type="application/pdf",
        size=8,
        uploaded_by=startup_user,
    )
    Review.objects.create(
        application=a, reviewer=sh.reviewer, total=Decimal("87.65"), comment="评审意见机密"
    )
    other = make_program(sz.city, slug="sz-compute", notice_days=0)
    sz_company = make_company(startup_user, name="深圳丁有限公司", code="91440300MA5FL8TQ2Y")
    _app(other, sz_company, startup_user, S.APPROVED, awarded_amount=Decimal("100000.00"))
    return program, other


def test_the_page_shows_the_awards_whose_notice_ended_and_their_sum(client, results):
    program, _ = results
    response = client.get(f"/shanghai/programs/{program.slug}/results/")
    assert response.status_code == 200
    rows = list(response.context["page"])
    assert [r["company__legal_name"] for r in rows] == ["公示甲科技有限公司", "公示乙智能有限公司"]
    html = response.content.decode()
    assert "¥300,000.00" in html and "¥200,000.50" in html
    assert "¥500,000.50" in html  # 300,000.00 + 200,000.50
    # The decision date is the city's calendar day.
    assert "2026-03-02 (Asia/Shanghai)" in html


def test_nothing_unpublished_private_or_of_another_city_appears(client, results, startup_user):
    program, _ = results
    html = client.get(f"/shanghai/programs/{program.slug}/results/").content.decode()
    for secret in [
        "未公示丙有限公司",  # notice not ended, or not awarded
        "¥900,000.00",
        "深圳丁有限公司",  # Shenzhen's
        "营业执照机密",  # a document
        "87.65",  # a score
        "评审意见机密",
        "机密项目标题",  # the project as applied for
        "777,777",  # the amount requested
        startup_user.email,
        "@shanghai.test",  # staff
    ]:
        assert secret not in html, secret


def test_a_draft_or_unpublished_program_or_another_citys_is_missing(client, results, shanghai):
    program, other = results
    assert client.get(f"/shanghai/programs/{other.slug}/results/").status_code == 404
    assert client.get(f"/shenzhen/programs/{other.slug}/results/").status_code == 200
    draft = make_program(shanghai.city, slug="draft-one", status="draft")
    assert client.get(f"/shanghai/programs/{draft.slug}/results/").status_code == 404
    services.program_save(
        city=shanghai.city,
        actor=shanghai.manager,
        program=program,
        values={"publish_results": False},
    )
    assert client.get(f"/shanghai/programs/{program.slug}/results/").status_code == 404
    index = client.get("/shanghai/results/").content.decode()
    assert f"/shanghai/programs/{program.slug}/results/" not in index
    assert f"/shanghai/programs/{draft.slug}/results/" not in index
    assert "/programs/sz-compute/results/" not in index


def test_a_closed_program_still_publishes(client, results, shanghai):
    program, _ = results
    program.status = "closed"
    program.save()
    response = client.get(f"/shanghai/programs/{program.slug}/results/")
    assert len(response.context["page"]) == 2


def test_linked_from_the_program_page_the_programs_and_the_city_home(client, results):
    program, _ = results
    url = f"/shanghai/programs/{program.slug}/results/"
    assert url in client.get(f"/shanghai/programs/{program.slug}/").content.decode()
    assert url in client.get("/shanghai/programs/").content.decode()
    assert "/shanghai/results/" in client.get("/shanghai/").content.decode()
    assert url in client.get("/shanghai/results/").content.decode()
    program.publish_results = False
    program.save()
    assert url not in client.get(f"/shanghai/programs/{program.slug}/").content.decode()


def test_the_query_count_does_not_grow_with_the_awards(client, results, startup_user):
    program, _ = results
    url = f"/shanghai/programs/{program.slug}/results/"
    with CaptureQueriesContext(connection) as before:
        client.get(url)
    company = make_company(startup_user, name="更多有限公司", code="91310000MA1FLBTQ2X")
    for _ in range(30):
        _app(program, company, startup_user, S.APPROVED, awarded_amount=Decimal("1.00"))
    with CaptureQueriesContext(connection) as after:
        response = client.get(url)
    assert len(response.context["page"]) == 32
    assert len(after.captured_queries) == len(before.captured_queries)


def test_both_languages(client, results):
    program, _ = results
    url = f"/shanghai/programs/{program.slug}/results/"
    assert "结果公示" in client.get(url).content.decode()
    client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    assert "Public results" in client.get(url).content.decode()
