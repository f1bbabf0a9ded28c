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

from portal.models import User
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
