"""portal.links: the registry through which a later app links an earlier app's pages to
its own, so no template names a URL of an app above its own layer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.template import Context, Template

from portal import links


@pytest.fixture
def slot(monkeypatch):
    monkeypatch.setattr(links, "_slots", {})
    return "test.slot"


def test_links_come_in_registration_order_and_a_none_url_is_left_out(slot):
    links.link_register(slot, name="b", label="B", url=lambda obj: f"/b/{obj}/")
    links.link_register(slot, name="a", label="A", url=lambda obj: f"/a/{obj}/")
    links.link_register(slot, name="none", label="None", url=lambda obj: None)
    assert links.link_list(slot, 7) == [
        links.Link(label="B", url="/b/7/"),
        links.Link(label="A", url="/a/7/"),
    ]
    assert links.link_list("nobody.registered", 7) == []


def test_registering_a_name_again_replaces_the_link(slot):
    links.link_register(slot, name="a", label="A", url=lambda obj: "/old/")
    links.link_register(slot, name="a", label="A", url=lambda obj: "/new/")
    assert [link.url for link in links.link_list(slot)] == ["/new/"]


def test_a_page_shows_the_registered_links_and_nothing_when_none_is(slot):
    template = Template(
        '{% load links %}{% extra_links "test.slot" obj as found %}'
        "{% for link in found %}<a href='{{ link.url }}'>{{ link.label }}</a>{% empty %}none"
        "{% endfor %}"
    )
    assert template.render(Context({"obj": 3})) == "none"
    links.link_register(slot, name="a", label="Three", url=lambda obj: f"/x/{obj}/")
    assert template.render(Context({"obj": 3})) == "<a href='/x/3/'>Three</a>"


LATER_APPS = {"portal": ("vouchers", "compute"), "vouchers": ("compute",)}


@pytest.mark.parametrize("layer", ["portal", "vouchers"])
def test_no_template_names_a_url_or_template_of_a_later_app(layer):
    """The import contract (lint-imports) cannot see templates; this does. The site's
    layout (templates/*.html, allauth's) is the portal's."""
    root = Path(settings.BASE_DIR) / "templates"
    pages = [*(root / layer).rglob("*.html")]
    if layer == "portal":
        pages += [*root.glob("*.html"), *(root / "allauth").rglob("*.html")]
    offending = sorted(
        str(page.relative_to(root))
        for page in pages
        if any(re.search(rf"[\"']{later}[:/]", page.read_text()) for later in LATER_APPS[layer])
    )
    assert offending == []


def test_the_navigation_lists_each_apps_pages_in_layer_order(client, shanghai):
    client.force_login(shanghai.manager)
    page = client.get("/shanghai/staff/").content.decode()
    hrefs = [
        "/shanghai/staff/applications/",
        "/shanghai/staff/programs/",
        "/shanghai/staff/vouchers/",
        "/shanghai/staff/data-centers/",
        "/shanghai/staff/settlements/",
        "/shanghai/staff/sync/",
    ]
    positions = [page.index(f'href="{href}"') for href in hrefs]
    assert positions == sorted(positions)
    assert 'href="/company/"' in page
    assert 'href="/my/vouchers/"' not in page  # a manager with no company has no vouchers
    assert 'href="/dc/"' not in page
