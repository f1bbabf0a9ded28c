"""Links that a later app contributes to an earlier app's pages.

Dependencies flow one way, `portal` ← `vouchers` ← `compute`, and that holds for
templates too: a vouchers page may not name a compute URL, nor the portal's layout a
vouchers one. Instead the page names a *slot* and renders whatever is registered there
(`{% extra_links "slot" obj as links %}`, portal/templatetags/links.py); the app that
owns the target page registers into the slot from its `AppConfig.ready()`. With the app
not installed the page simply shows no link.

Slots, and the object each link's `url` is given:

- `portal.user_nav` (the request): the signed-in user's links in the site navigation.
- `portal.staff_nav` (the city): the city's staff pages, in the staff navigation.
- `portal.city_home` (the city): buttons on a city's home page.
- `vouchers.voucher` (a voucher of the user's company): the voucher's own page; the
  company's pages link the voucher code to the first one.

Links are listed in registration order, i.e. the order of `INSTALLED_APPS`.

A slot may also hold *groups*: a title and a list of links worked out for the page's
object (`link_group_register`, `{% link_groups "slot" obj as groups %}`); a group with
no links is left out. Group slots:

- `portal.staff_home` (the request, in a city): what waits for the city's staff, listed
  on the staff home (vouchers: applications no approver may approve, tie-breaks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.utils.functional import Promise


@dataclass(frozen=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True)
class _Entry:
    label: str | Promise
    url: Callable[[Any], str | None]


_slots: dict[str, dict[str, _Entry]] = {}


def link_register(
    slot: str, *, name: str, label: str | Promise, url: Callable[[Any], str | None]
) -> None:
    """Offer a link in `slot`. `url(obj)` gives its address for the page's object, or
    None where it does not apply (the link is then left out). Registering a `name`
    again replaces the link, so a repeated `ready()` adds nothing."""
    _slots.setdefault(slot, {})[name] = _Entry(label=label, url=url)


def link_list(slot: str, obj: Any = None) -> list[Link]:
    links = []
    for entry in _slots.get(slot, {}).values():
        url = entry.url(obj)
        if url:
            links.append(Link(label=str(entry.label), url=url))
    return links


@dataclass(frozen=True)
class LinkGroup:
    title: str
    links: list[Link]


@dataclass(frozen=True)
class _Group:
    title: str | Promise
    links: Callable[[Any], list[Link]]


_groups: dict[str, dict[str, _Group]] = {}


def link_group_register(
    slot: str, *, name: str, title: str | Promise, links: Callable[[Any], list[Link]]
) -> None:
    """Offer a group of links in `slot`: `links(obj)` lists them for the page's object.
    Registering a `name` again replaces the group."""
    _groups.setdefault(slot, {})[name] = _Group(title=title, links=links)


def link_group_list(slot: str, obj: Any = None) -> list[LinkGroup]:
    groups = []
    for entry in _groups.get(slot, {}).values():
        links = entry.links(obj)
        if links:
            groups.append(LinkGroup(title=str(entry.title), links=links))
    return groups
