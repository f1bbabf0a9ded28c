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


@pytest.fixture
def group_slot(monkeypatch):
    monkeypatch.setattr(links, "_groups", {})
    return "test.groups"


def test_work_lists_are_counted_in_one_statement_and_empty_ones_list_nothing(
    group_slot, db, django_assert_num_queries
):
    """Four lists' counts (capped, exact, nothing to count, a sum) come from one
    statement; only the lists with rows run the query of their first few."""
    from portal.models import City

    for slug in ("a", "b", "c"):
        City.objects.create(slug=slug, name_zh=slug, name_en=slug, code=slug.upper() * 2)
    listed = []

    def work(rows, **tally):
        def first():
            listed.append(rows.model)
            return [links.Link(label=str(c), url=f"/{c.slug}/") for c in rows[:2]]

        return lambda obj: links.WorkList(count=links.Tally(rows, **tally), links=first)

    some = City.objects.filter(slug__in=["a", "b", "c"]).order_by("slug")
    links.work_list_register(group_slot, name="some", title="Some", work=work(some, capped=True))
    links.work_list_register(group_slot, name="none", title="None", work=work(some.none()))
    links.work_list_register(
        group_slot, name="empty", title="Empty", work=work(some.filter(slug="zz"), total="id")
    )
    links.work_list_register(
        group_slot, name="sum", title="Sum", work=work(some.exclude(slug="a"), total="id")
    )
    ids = sum(some.exclude(slug="a").values_list("id", flat=True))
    with django_assert_num_queries(3):  # the counts, then the first rows of "some", "sum"
        groups = links.link_group_list(group_slot)
    assert [(g.name, g.count, [link.url for link in g.links]) for g in groups] == [
        ("some", 3, ["/a/", "/b/"]),
        ("none", 0, []),
        ("empty", 0, []),
        ("sum", ids, ["/b/", "/c/"]),
    ]
    assert listed == [City, City]
