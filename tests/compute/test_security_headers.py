"""Security headers and no inline script or style (issue #15): every role's pages are
walked from their start pages, following the links they show, and each answer must
carry the Content-Security-Policy, Referrer-Policy and Permissions-Policy, and no HTML
page may hold an inline script, an inline style, a style attribute or an event-handler
attribute (the policy would block them: the page would break in the browser)."""

from __future__ import annotations

import re
from collections import deque
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from django.conf import settings
from django.test import Client

from tests.factories import UserFactory
from tests.vouchers.conftest import complete_draft
from vouchers import services as voucher_services

# Never followed: they change state on GET or end the session (and a file is no page).
SKIP = re.compile(r"^/(accounts/logout|i18n/)|\.(csv|pdf)$|/download|/documents/")
PAGES_PER_ROLE = 150


class _Inline(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        # A data block (JSON for a script file to read) is never run, so the policy
        # leaves it alone; anything else must come from a file.
        data_block = (names.get("type") or "").lower() in (
            "application/json",
            "application/ld+json",
        )
        if tag == "script" and not names.get("src") and not data_block:
            self.problems.append("<script> without src")
        if tag == "style":
            self.problems.append("<style>")
        for name, value in attrs:
            if name == "style":
                self.problems.append(f"style attribute on <{tag}>")
            if name.startswith("on"):
                self.problems.append(f"{name} attribute on <{tag}>")
            if name in ("href", "src", "action") and (value or "").lower().startswith(
                "javascript:"
            ):
                self.problems.append(f"javascript: URL on <{tag}>")
        if tag == "a" and names.get("href"):
            self.links.append(names["href"] or "")


def _headers_ok(response, path: str) -> None:
    assert response.get("Content-Security-Policy"), path
    assert response.get("Referrer-Policy") == "same-origin", path
    assert "camera=()" in response.get("Permissions-Policy", ""), path


def _walk(client: Client, starts: list[str]) -> dict[str, list[str]]:
    """GET the start pages and the site's pages they link to; return problems by path."""
    seen, queue, problems = set(), deque(starts), {}
    pages = 0
    while queue and len(seen) < PAGES_PER_ROLE:
        path = queue.popleft()
        if path in seen or SKIP.search(path):
            continue
        seen.add(path)
        response = client.get(path)
        _headers_ok(response, path)
        if response.status_code != 200 or "text/html" not in response.get("Content-Type", ""):
            continue
        pages += 1
        if path.startswith("/api/docs"):
            continue  # its own policy, checked below
        parser = _Inline()
        parser.feed(response.content.decode())
        if parser.problems:
            problems[path] = parser.problems
        for link in parser.links:
            target = urljoin(path, link)
            parts = urlsplit(target)
            if parts.path.startswith("/admin/") and parts.query:
                continue  # the admin's filters and sorts: the same page again
            if not parts.netloc and parts.path.startswith("/"):
                queue.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    assert pages >= len(starts), (starts, seen)
    return problems


@pytest.fixture
def full_world(ledger_world, world, startup_user):
    sh = world["shanghai"]
    app = complete_draft(ledger_world.program, ledger_world.company, startup_user)
    voucher_services.application_submit(application=app, actor=startup_user)
    operator = UserFactory(email="ops@guian.test")
    ledger_world.dc.operators.add(operator)
    admin = UserFactory(email="root@platform.test", is_staff=True, is_superuser=True)
    return {"sh": sh, "app": app, "operator": operator, "admin": admin, "lw": ledger_world}


def test_every_roles_pages_carry_the_headers_and_no_inline_script_or_style(
    full_world, startup_user, outsider
):
    sh, lw = full_world["sh"], full_world["lw"]
    city = f"/{sh.city.slug}"
    roles = {
        "anonymous": (
            None,
            ["/", "/accounts/login/", "/accounts/signup/", "/accounts/password/reset/", city],
        ),
        "company": (
            startup_user,
            [
                "/company/",
                f"/company/applications/{full_world['app'].pk}/",
                "/my/vouchers/",
                f"/my/vouchers/{lw.voucher.code}/",
                "/accounts/profile/",
                "/accounts/sessions/",
                "/accounts/email/",
                "/accounts/password/change/",
            ],
        ),
        "outsider": (outsider, ["/", city, "/accounts/profile/"]),
        "reviewer": (sh.reviewer, [f"{city}/staff/"]),
        "approver": (sh.approver, [f"{city}/staff/"]),
        "program_manager": (sh.manager, [f"{city}/staff/", f"{city}/staff/audit/"]),
        "auditor": (sh.auditor, [f"{city}/staff/", f"{city}/staff/audit/"]),
        "operator": (full_world["operator"], ["/dc/", f"/dc/{lw.dc.slug}/"]),
        "platform_admin": (
            full_world["admin"],
            [
                "/admin/",
                "/admin/portal/city/",
                f"/admin/portal/city/{sh.city.pk}/change/",
                "/admin/compute/datacenter/",
                f"/admin/compute/datacenter/{lw.dc.pk}/change/",
                "/admin/portal/user/",
            ],
        ),
    }
    problems = {}
    for role, (user, starts) in roles.items():
        client = Client()
        if user is not None:
            client.force_login(user)
        for path, found in _walk(client, starts).items():
            problems[f"{role} {path}"] = found
    assert problems == {}


def test_the_policy_allows_no_inline_script_or_style(client, db):
    response = client.get("/")
    policy = response["Content-Security-Policy"]
    directives = dict(
        (part.split()[0], part.split()[1:]) for part in policy.split(";") if part.strip()
    )
    assert directives["script-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    assert response["Referrer-Policy"] == "same-origin"
    for feature in ("camera", "microphone", "geolocation"):
        assert f"{feature}=()" in response["Permissions-Policy"]


def test_error_pages_and_refusals_carry_the_headers_too(client, db):
    for response in (
        client.get("/no-such-city/"),
        client.get("/api/v1/no-such-thing"),
        client.get("/api/v1/vouchers/X"),
        client.post("/accounts/login/", data="x\x00", content_type="text/plain"),
    ):
        assert response.get("Content-Security-Policy"), response.status_code
        assert response.get("Permissions-Policy")


def test_swagger_ui_is_served_from_this_site_under_its_policy(client, db):
    """Swagger UI's files come from drf-spectacular-sidecar under /static/: the page
    references no other origin and gets the site's policy, no CDN allowed."""
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert response["Content-Security-Policy"] == settings.CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    html = response.content.decode()
    parser = _Inline()
    parser.feed(html)
    assert parser.problems == []
    assert re.findall(r"(?:https?:)?//[\w.-]+", html) == []  # no external origin at all
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    bundle = [a for a in assets if a.endswith("swagger-ui-bundle.js")]
    assert bundle and bundle[0].startswith(settings.STATIC_URL + "drf_spectacular_sidecar/")
    for asset in assets:
        assert urlsplit(asset).netloc == "", asset
    # Its start-up script is a file of its own, under the site's origin.
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200
    assert "javascript" in script["Content-Type"]
