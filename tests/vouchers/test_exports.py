"""Exports of the application queue, awards, vouchers and ledger (issue #12 item 7):
the rows are the filtered screen's, formula-like text comes out inert, each export is
an audit event, and another city's staff or another company gets a 404."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from portal.models import AuditEvent
from tests.exporting import csv_rows, xlsx_rows
from tests.factories import UserFactory
from tests.vouchers.conftest import make_company, make_program
from vouchers.ledger import voucher_issue
from vouchers.models import Application, ApplicationState, Company, Review, Voucher

# Text a spreadsheet would run as a formula (each starts with a trigger character).
FORMULAS = ['=HYPERLINK("http://evil.test","x")', "+1+2", "-3+4", "@SUM(A1:A2)", "\tTAB", "\rCR"]


def client_for(user, language: str = "en") -> Client:
    client = Client()
    client.force_login(user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    return client


@pytest.fixture
def queue_world(world):
    """Shanghai's program with 12 applications in several states (companies named like
    formulas among them), two assigned to reviewer 1; Shenzhen's with one."""
    sh, sz = world["shanghai"], world["shenzhen"]
    program = make_program(sh.city)
    other = make_program(sh.city, slug="second", name_zh="第二批", name_en="Second round")
    states = [
        ApplicationState.SUBMITTED,
        ApplicationState.IN_REVIEW,
        ApplicationState.APPROVED,
        ApplicationState.SCREENING,
    ]
    start = datetime(2026, 10, 1, 9, tzinfo=UTC)
    apps = []
    for n in range(12):
        name = FORMULAS[n] if n < len(FORMULAS) else f"公司{n}"
        company = Company.objects.create(legal_name=name, credit_code=f"91310000MA1FL{n:05d}")
        apps.append(
            Application.objects.create(
                city=sh.city,
                program=program if n % 3 else other,
                company=company,
                created_by=world["startup"],
                state=states[n % len(states)],
                title=f"项目{n}",
                requested_amount=Decimal("100000.00") + n * Decimal("1000.50"),
                submitted_at=start + timedelta(days=n),
            )
        )
    Application.objects.create(  # a draft: never on the queue, never exported
        city=sh.city,
        program=program,
        company=Company.objects.create(legal_name="草稿", credit_code="91310000MA1FLDRAFT"),
        created_by=world["startup"],
        state=ApplicationState.DRAFT,
    )
    for app in apps[:2]:
        Review.objects.create(application=app, reviewer=sh.reviewer, assigned_by=sh.manager)
    sz_app = Application.objects.create(
        city=sz.city,
        program=make_program(sz.city),
        company=Company.objects.create(legal_name="深圳公司", credit_code="91440300MA5FSZ0001"),
        created_by=world["startup"],
        state=ApplicationState.SUBMITTED,
        submitted_at=start,
    )
    return {"apps": apps, "program": program, "other": other, "sz_app": sz_app}


def _url(name: str, fmt: str, city: str = "shanghai") -> str:
    return reverse(f"vouchers:{name}_{fmt}", args=[city])


QUERIES = [
    "",
    "state=in_review",
    "sort=submitted_at",
    "sort=-requested_amount&q=%E5%85%AC%E5%8F%B8",  # q=公司
    "program={other}&sort=company__legal_name",
]


@pytest.mark.parametrize("query", QUERIES)
def test_application_export_rows_are_the_filtered_queue(queue_world, shanghai, query):
    query = query.format(other=queue_world["other"].pk)
    client = client_for(shanghai.manager)
    screen = client.get(f"/shanghai/staff/applications/?{query}")
    assert screen.status_code == 200
    on_screen = [a.pk for a in screen.context["page"]]
    assert on_screen, "the filter should match something"
    exported = csv_rows(client.get(f"{_url('application_export', 'csv')}?{query}"))
    assert [int(row[0]) for row in exported[1:]] == on_screen
    sheet = xlsx_rows(client.get(f"{_url('application_export', 'xlsx')}?{query}"))
    assert [int(row[0]) for row in sheet[1:]] == on_screen


def test_application_export_columns_as_the_screen_shows_them(queue_world, shanghai):
    rows = csv_rows(client_for(shanghai.manager).get(_url("application_export", "csv")))
    assert rows[0][:5] == ["#", "Company", "Credit code", "Program", "State"]
    by_id = {int(r[0]): r for r in rows[1:]}
    first = queue_world["apps"][1]  # in review, program "Computing vouchers"
    row = by_id[first.pk]
    assert row[2] == first.company.credit_code
    assert row[3] == "Computing vouchers"
    assert row[4] == "In review"
    assert row[6] == shanghai.reviewer.display_name or shanghai.reviewer.email
    assert row[8] == "101000.50"  # a number, exact, not neutralised
    assert queue_world["sz_app"].pk not in by_id


def test_headers_follow_the_users_language(queue_world, shanghai):
    zh = csv_rows(client_for(shanghai.manager, "zh-hans").get(_url("application_export", "csv")))
    en = csv_rows(client_for(shanghai.manager, "en").get(_url("application_export", "csv")))
    assert en[0][1] == "Company" and zh[0][1] != "Company"
    assert zh[0][1] == "企业"


def test_formula_cells_are_neutralised_and_numbers_stay_numbers(queue_world, shanghai):
    client = client_for(shanghai.manager)
    rows = csv_rows(client.get(_url("application_export", "csv")))
    names = {r[1] for r in rows[1:]}
    for formula in FORMULAS:
        assert "'" + formula in names
        assert formula not in names
    assert all(not r[8].startswith("'") for r in rows[1:])
    sheet = xlsx_rows(client.get(_url("application_export", "xlsx")))
    cells = [c for row in sheet for c in row]
    assert not any(isinstance(c, tuple) for c in cells), "no formula cell"
    sheet_names = {row[1] for row in sheet[1:]}
    assert {"'" + f for f in FORMULAS} <= sheet_names
    assert all(isinstance(row[8], float) for row in sheet[1:])


def test_reviewer_exports_only_their_own_queue(queue_world, shanghai):
    rows = csv_rows(client_for(shanghai.reviewer).get(_url("application_export", "csv")))
    assert sorted(int(r[0]) for r in rows[1:]) == sorted(a.pk for a in queue_world["apps"][:2])
    assert client_for(shanghai.reviewer2).get(_url("application_export", "csv")).status_code == 200
    event = AuditEvent.objects.filter(action="export.applications").order_by("-seq").first()
    assert event.data["filter"] == {"own_queue": True}


def test_each_export_is_an_audit_event_with_its_filter(queue_world, shanghai):
    client = client_for(shanghai.auditor)
    before = AuditEvent.objects.filter(city=shanghai.city).count()
    response = client.get(f"{_url('application_export', 'xlsx')}?state=in_review")
    assert response.status_code == 200
    event = AuditEvent.objects.filter(city=shanghai.city).order_by("-seq").first()
    assert AuditEvent.objects.filter(city=shanghai.city).count() == before + 1
    assert event.action == "export.applications"
    assert event.actor == shanghai.auditor
    assert event.data == {"format": "xlsx", "filter": {"state": "in_review"}}


def test_awards_are_the_approved_applications_with_their_vouchers(queue_world, shanghai):
    approved = [a for a in queue_world["apps"] if a.state == ApplicationState.APPROVED]
    for app in approved:
        app.awarded_amount = Decimal("150000.00")
        app.decided_at = datetime(2026, 11, 1, tzinfo=UTC)
        app.save()
    voucher = voucher_issue(
        program=approved[0].program,
        company=approved[0].company,
        amount=Decimal("150000.00"),
        actor=shanghai.approver,
        valid_from=date(2026, 11, 1),
    )
    Voucher.objects.filter(pk=voucher.pk).update(application=approved[0])
    rows = csv_rows(client_for(shanghai.manager).get(_url("award_export", "csv")))
    assert sorted(int(r[0]) for r in rows[1:]) == sorted(a.pk for a in approved)
    assert {r[7] for r in rows[1:]} == {voucher.code, ""}
    assert {r[5] for r in rows[1:]} == {"150000.00"}


@pytest.fixture
def vouchers_world(world):
    sh, sz = world["shanghai"], world["shenzhen"]
    company = make_company(world["startup"])
    other_user = UserFactory(email="other@company.test")
    other_company = make_company(other_user, name="其他公司", code="91310000MA1FLOTHER")
    mine = voucher_issue(
        program=make_program(sh.city),
        company=company,
        amount=Decimal("1000.00"),
        actor=sh.approver,
        valid_from=date(2026, 11, 1),
    )
    theirs = voucher_issue(
        program=make_program(sz.city),
        company=other_company,
        amount=Decimal("500.00"),
        actor=sz.approver,
        valid_from=date(2026, 11, 1),
    )
    return {"mine": mine, "theirs": theirs, "other_user": other_user}


def test_city_voucher_and_ledger_exports(vouchers_world, shanghai):
    client = client_for(shanghai.manager)
    mine = vouchers_world["mine"]
    rows = csv_rows(client.get(_url("voucher_export", "csv")))
    assert [r[0] for r in rows[1:]] == [mine.code]
    assert rows[1][4:6] == ["1000.00", "1000.00"]
    ledger = csv_rows(client.get(f"{_url('ledger_export', 'csv')}?voucher={mine.code}"))
    assert [(r[1], r[2], r[3]) for r in ledger[1:]] == [(mine.code, "Issue", "1000.00")]
    theirs = vouchers_world["theirs"].code
    assert client.get(f"{_url('ledger_export', 'csv')}?voucher={theirs}").status_code == 404


def test_company_exports_only_its_own(vouchers_world, world):
    mine, theirs = vouchers_world["mine"], vouchers_world["theirs"]
    client = client_for(world["startup"])
    rows = csv_rows(client.get(reverse("vouchers:my_voucher_export_csv")))
    assert [r[0] for r in rows[1:]] == [mine.code]
    ledger = csv_rows(client.get(reverse("vouchers:my_ledger_export_xlsx").replace("xlsx", "csv")))
    assert {r[1] for r in ledger[1:]} == {mine.code}
    url = reverse("vouchers:my_ledger_export_csv") + f"?voucher={theirs.code}"
    assert client.get(url).status_code == 404
    event = AuditEvent.objects.filter(city=None, action="export.ledger").order_by("-seq").first()
    assert event.actor == world["startup"]
    assert event.data["companies"] == [mine.company_id]
    for name in ("my_voucher_export", "my_ledger_export"):
        for fmt in ("csv", "xlsx"):
            url = reverse(f"vouchers:{name}_{fmt}")
            assert client_for(world["outsider"]).get(url).status_code == 404


CITY_EXPORTS = ["application_export", "award_export", "voucher_export", "ledger_export"]


@pytest.mark.parametrize("name", CITY_EXPORTS)
@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_another_citys_staff_and_outsiders_get_404(queue_world, world, name, fmt):
    before = AuditEvent.objects.count()
    for user in [*world["shenzhen"].staff(), world["startup"], world["outsider"]]:
        assert client_for(user).get(_url(name, fmt)).status_code == 404, user.email
    assert AuditEvent.objects.count() == before, "a refused export is not recorded as made"


def test_other_roles_cannot_export_the_city(queue_world, shanghai):
    for name in ("award_export", "voucher_export", "ledger_export"):
        for user in (shanghai.reviewer, shanghai.approver):
            assert client_for(user).get(_url(name, "csv")).status_code == 403


def test_list_pages_link_their_exports_with_their_filters(queue_world, shanghai):
    page = client_for(shanghai.manager).get("/shanghai/staff/applications/?state=in_review")
    html = page.content.decode()
    for fmt in ("csv", "xlsx"):
        assert f'href="{_url("application_export", fmt)}?state=in_review"' in html
        assert f'href="{_url("award_export", fmt)}"' in html
    # A reviewer exports their own queue, not the city's awards.
    html = client_for(shanghai.reviewer).get("/shanghai/staff/applications/").content.decode()
    assert _url("application_export", "csv") in html
    assert _url("award_export", "csv") not in html
    vouchers = client_for(shanghai.auditor).get("/shanghai/staff/vouchers/?status=active")
    assert f'href="{_url("voucher_export", "csv")}?status=active"' in vouchers.content.decode()
