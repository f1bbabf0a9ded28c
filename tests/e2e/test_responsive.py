"""Every key page of every role is usable at 360, 768 and 1366 px (issue #14 item 1), in
Chromium on the demo's data.

A page fails when the document is wider than the viewport, when an element sticks out
of the viewport without being inside a box that scrolls sideways (a table scrolls in its
own box on phones, site.css), or when a table's first shown column — what a row is
about — or a column whose header is marked `class="key"` (the figures a reader came for)
is not fully visible before scrolling that box, or squeezed narrower than three
characters. A table marked `cards` becomes one card per row on phones (site.css); then
its first row's cells are checked the same way. A screenshot of every
page at every width is saved under test-artifacts/responsive/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.management import call_command

from portal.models import City, User
from tests.e2e.test_accessibility import pages_by_role, session_cookie
from vouchers.models import Program, Voucher

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "responsive"
WIDTHS = (360, 768, 1366)

# What sticks out, and which tables hide what they are about; run in the page.
PROBLEMS = "\n".join(
    line
    for line in (Path(__file__).parent / "responsive_probe.js").read_text().splitlines()
    if not line.startswith("//")
)


def _slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "home"


def key_pages() -> dict[str, tuple[User | None, list[str]]]:
    """The accessibility walk's pages, and the widest lists besides."""
    pages = pages_by_role()
    city = pages["program manager"][1][0].split("/")[1]
    program = Program.objects.filter(city__slug=city).first()
    member = pages["company"][0]
    voucher = Voucher.objects.filter(company__members=member).first()
    pages["company"][1].extend(["/my/dashboard/", f"/my/vouchers/{voucher.code}/"])
    pages["program manager"][1].extend(
        [
            f"/{city}/staff/applications/",
            f"/{city}/staff/programs/{program.slug}/ranking/",
            f"/{city}/staff/redemptions/",
            f"/{city}/staff/dashboards/",
        ]
    )
    dc = pages["operator"][1][0].split("/")[2]
    pages["operator"][1].append(f"/dc/{dc}/dashboard/")
    return pages


def test_every_roles_key_pages_fit_every_width(live_server, browser):
    call_command("seed_demo", verbosity=0)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    found, checked = [], 0
    pages = key_pages()
    for role, (user, paths) in pages.items():
        cookie = session_cookie(user) if user else None
        for width in WIDTHS:
            context = browser.new_context(viewport={"width": width, "height": 900})
            if cookie:
                context.add_cookies(
                    [{"name": "sessionid", "value": cookie, "url": live_server.url}]
                )
            page = context.new_page()
            for path in paths:
                response = page.goto(live_server.url + path)
                assert response.status == 200, (role, path, response.status)
                page.screenshot(
                    path=str(ARTIFACTS / f"{_slug(role)}-{_slug(path)}-{width}.png"),
                    full_page=True,
                )
                found += [f"{role} {width}px {path}: {p}" for p in page.evaluate(PROBLEMS)]
                checked += 1
            context.close()
    assert found == []
    assert checked == len(WIDTHS) * sum(len(p) for _, p in pages.values())


def test_the_staff_header_is_one_line_on_a_phone(live_server, browser):
    """At 390 px the staff pages' Menu button wrapped onto a second line below the city
    name (issue #14). The brand, the city and the button share one line at 390 and
    360 px in both languages; screenshots in test-artifacts/responsive/header-*.png."""
    call_command("seed_demo", verbosity=0)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    user, paths = pages_by_role()["program manager"]
    cookie = session_cookie(user)
    # A long name in both languages: it may be cut, the button may not move.
    City.objects.filter(slug=paths[0].split("/")[1]).update(
        name_zh="新疆维吾尔自治区乌鲁木齐市", name_en="Urumqi, Xinjiang Uygur Autonomous Region"
    )
    found = []
    for language in ("zh-hans", "en"):
        for width in (390, 360):
            context = browser.new_context(viewport={"width": width, "height": 844})
            context.add_cookies(
                [
                    {"name": "sessionid", "value": cookie, "url": live_server.url},
                    {"name": "suanli_language", "value": language, "url": live_server.url},
                ]
            )
            page = context.new_page()
            assert page.goto(live_server.url + paths[0]).status == 200
            page.screenshot(
                path=str(ARTIFACTS / f"header-{language}-{width}.png"), clip=_top(width)
            )
            toggle = page.locator("header.site button.menu-toggle").bounding_box()
            city = page.locator("header.site a.city-name")
            box = city.bounding_box()
            assert toggle and box, (language, width)
            if toggle["y"] >= box["y"] + box["height"] or toggle["x"] + toggle["width"] > width:
                found.append(f"{language} {width}px: menu {toggle} below/after city {box}")
            context.close()
    assert found == []


def _top(width: int) -> dict:
    return {"x": 0, "y": 0, "width": width, "height": 200}
