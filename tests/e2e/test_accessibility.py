"""Accessibility (issue #14 item 7): axe-core, vendored from its npm package, run in
Chromium on the key pages of every role of the demo, in both languages, finds no
serious or critical violation."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client

from compute.models import DataCenter, Redemption
from portal.models import City, CityMembership, Role, User
from vouchers.models import Application, CompanyMember, OutcomeReport, Program, Voucher

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
BLOCKING = {"serious", "critical"}


def session_cookie(user: User) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def pages_by_role() -> dict[str, tuple[User | None, list[str]]]:
    """The key pages of each role, from the demo's own objects."""
    # A city of the demo with vouchers (so its voucher pages have rows).
    city = City.objects.filter(pk__in=Voucher.objects.values("city")).order_by("slug").first()
    program = Program.objects.filter(city=city).first()
    manager = CityMembership.objects.get(city=city, role=Role.PROGRAM_MANAGER).user
    reviewer = CityMembership.objects.filter(city=city, role=Role.REVIEWER).first().user
    application = Application.objects.filter(city=city).exclude(state="draft").first()
    member = CompanyMember.objects.filter(company__applications__city=city).first()
    voucher = Voucher.objects.filter(city=city).first()
    dc = DataCenter.objects.filter(
        pk__in=Redemption.objects.filter(voucher__city=city).values("data_center")
    ).first()
    operator = dc.operators.first()
    own = Application.objects.filter(company=member.company).first()
    # The demo's accepted outcome report (成果报告) and a member of its company.
    report = OutcomeReport.objects.filter(state="accepted").select_related("city").first()
    reporter = report.company.members.order_by("pk").first()
    assert report.city == city  # the demo accepts one in the first city by slug
    return {
        "anonymous": (
            None,
            [
                "/",
                "/accounts/login/",
                "/accounts/signup/",
                f"/{city.slug}/",
                f"/{city.slug}/programs/",
                f"/{city.slug}/programs/{program.slug}/",
            ],
        ),
        "company": (
            member.user,
            [
                "/company/",
                f"/company/applications/{own.pk}/",
                "/my/vouchers/",
                "/accounts/profile/",
            ],
        ),
        "reporting company": (
            reporter,
            ["/company/outcomes/", f"/company/outcomes/{report.pk}/"],
        ),
        "reviewer": (
            reviewer,
            [
                f"/{city.slug}/staff/",
                f"/{city.slug}/staff/applications/",
                f"/{city.slug}/staff/applications/{application.pk}/",
            ],
        ),
        "program manager": (
            manager,
            [
                f"/{city.slug}/staff/",
                f"/{city.slug}/staff/programs/",
                f"/{city.slug}/staff/programs/{program.slug}/",
                f"/{city.slug}/staff/vouchers/",
                f"/{city.slug}/staff/vouchers/{voucher.code}/",
                f"/{city.slug}/staff/settlements/",
                f"/{city.slug}/staff/members/",
                f"/{city.slug}/staff/audit/",
                f"/{city.slug}/staff/outcomes/",
                f"/{city.slug}/staff/outcomes/{report.pk}/",
                f"/{city.slug}/staff/programs/{program.slug}/dashboard/",
            ],
        ),
        "operator": (
            operator,
            [
                f"/dc/{dc.slug}/",
                f"/dc/{dc.slug}/redemptions/",
                f"/dc/{dc.slug}/batches/",
                f"/dc/{dc.slug}/keys/",
                f"/dc/{dc.slug}/settlements/",
            ],
        ),
    }


def test_axe_finds_nothing_serious_on_any_roles_key_pages(live_server, browser):
    call_command("seed_demo", verbosity=0)
    found, checked = [], 0
    for role, (user, paths) in pages_by_role().items():
        cookie = session_cookie(user) if user else None
        for language in ("zh-hans", "en"):
            # axe is injected as a script tag, which the pages' CSP would refuse.
            context = browser.new_context(bypass_csp=True)
            cookies = [{"name": "suanli_language", "value": language, "url": live_server.url}]
            if cookie:
                cookies.append({"name": "sessionid", "value": cookie, "url": live_server.url})
            context.add_cookies(cookies)
            page = context.new_page()
            for path in paths:
                response = page.goto(live_server.url + path)
                assert response.status == 200, (role, path, response.status)
                page.add_script_tag(path=str(AXE))
                violations = page.evaluate(
                    "async () => (await axe.run(document, {resultTypes: ['violations']}))"
                    ".violations.map(v => [v.id, v.impact, v.nodes.map(n => n.target.join(' '))])"
                )
                checked += 1
                found += [
                    f"{role} {language} {path}: {rule} ({impact}) at {targets[:3]}"
                    for rule, impact, targets in violations
                    if impact in BLOCKING
                ]
            context.close()
    assert found == []
    assert checked == 2 * sum(len(paths) for _, paths in pages_by_role().values())
