"""Nothing is loaded from another origin (issue #14 item 4): the servers reach no CDN
and the Content-Security-Policy allows none. A crawler signs in as each kind of user of
the demo, follows the portal's own links from their home pages, and fails on any
`src`/`href` (or `srcset`, `action`, `data`) that points at another origin."""

from __future__ import annotations

from collections import deque
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from django.core.management import call_command
from django.test import Client

from compute.models import DataCenter
from portal.models import CityMembership, Role, User
from vouchers.models import CompanyMember

pytestmark = pytest.mark.django_db

ORIGIN = "http://testserver"
ATTRIBUTES = {"src", "href", "srcset", "action", "data", "poster", "formaction"}
# Links a crawler must not follow (they sign out, or answer with files, not pages).
SKIP = ("/accounts/logout", "/download", ".csv", ".pdf", ".xlsx", "/admin/")
PAGES_PER_USER = 40


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ATTRIBUTES and value:
                urls = [v.split()[0] for v in value.split(",")] if name == "srcset" else [value]
                self.refs.extend((tag, name, url.strip()) for url in urls)


def external(url: str) -> bool:
    parts = urlsplit(urljoin(ORIGIN + "/", url))
    if parts.scheme in ("mailto", "tel", "data", "javascript", "blob"):
        return parts.scheme == "javascript"  # no inline script either
    return f"{parts.scheme}://{parts.netloc}" != ORIGIN


def crawl(client: Client, start: list[str]) -> tuple[int, list[str]]:
    seen, queue, found = set(start), deque(start), []
    pages = 0
    while queue and pages < PAGES_PER_USER:
        path = queue.popleft()
        response = client.get(path)
        if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
            continue
        pages += 1
        parser = _Refs()
        parser.feed(response.content.decode())
        for tag, attribute, url in parser.refs:
            if external(url):
                found.append(f"{path}: <{tag} {attribute}={url!r}>")
            elif tag == "a" and attribute == "href":
                target = urlsplit(urljoin(ORIGIN + path, url))
                link = target.path + (f"?{target.query}" if target.query else "")
                if target.path not in seen and not any(s in link for s in SKIP):
                    seen.add(target.path)
                    queue.append(link)
    return pages, found


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_helper_spots_other_origins():
    assert external("https://cdn.jsdelivr.net/npm/swagger-ui-dist/swagger-ui.css")
    assert external("//fonts.googleapis.com/css")
    assert external("javascript:alert(1)")
    assert not external("/static/vendor/pico/pico.min.css")
    assert not external("http://testserver/zh/")
    assert not external("mailto:help@example.cn")


def test_no_page_of_any_role_loads_or_links_another_origin():
    call_command("seed_demo", verbosity=0)
    manager = CityMembership.objects.filter(role=Role.PROGRAM_MANAGER).first().user
    reviewer = CityMembership.objects.filter(role=Role.REVIEWER).first().user
    founder = CompanyMember.objects.first().user
    operator = DataCenter.objects.exclude(operators=None).first().operators.first()
    admin = User.objects.filter(is_superuser=True).first()
    visits = {
        "anonymous": (Client(), ["/", "/accounts/login/", "/accounts/signup/", "/api/docs/"]),
        "program manager": (signed_in(manager), ["/"]),
        "reviewer": (signed_in(reviewer), ["/"]),
        "company": (signed_in(founder), ["/", "/company/"]),
        "operator": (signed_in(operator), ["/", "/dc/"]),
        "platform admin": (signed_in(admin), ["/"]),
    }
    problems, counts = [], {}
    for who, (client, start) in visits.items():
        counts[who], found = crawl(client, start)
        problems += [f"{who}: {p}" for p in found]
    assert problems == []
    # The crawl really walked the portal (a broken start would pass vacuously).
    assert all(n >= 3 for n in counts.values()), counts
    assert sum(counts.values()) >= 60, counts


def test_the_favicon_is_served():
    response = Client().get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"].endswith("/icons/favicon.ico")
    body = Client().get("/").content.decode()
    assert 'rel="icon"' in body and "icons/suanli.svg" in body
