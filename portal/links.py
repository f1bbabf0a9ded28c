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
- `vouchers.company` (a company of the user's): pages about the company, linked from
  its page and its line on /company/ (compute: its shareholders and managers).

Links are listed in registration order, i.e. the order of `INSTALLED_APPS`.

A slot may also hold *groups*: a title and a list of links worked out for the page's
object (`link_group_register`, `{% link_groups "slot" obj as groups %}`); a group with
no links is left out. Group slots:

- `portal.staff_home` (the request, in a city): what waits for the city's staff, listed
  on the staff home (vouchers: applications no approver may approve, tie-breaks).

A group may also be a *work list* (`work_list_register`): for the page's object it gives
a `WorkList` (how many wait in all, the first few as links with a detail such as the
days waited, and the filtered list that shows them all), or None where the list is not
the user's (their roles do not act on it). A work list is shown even when nothing waits,
so an empty one says so. Work-list slots:

- `portal.staff_home` (the request, in a city): each role's work, by vouchers
  (applications to screen, reviews assigned, answered information requests, objections,
  approvals) and compute (redemptions, discrepancies, feeds, statements).
- `vouchers.company_home` (the request): the company's work on /company/, by vouchers
  (information requests to answer, drafts) and compute (vouchers to bind, redemptions).

A work list gives its count as a `Tally` (the rows to count, not yet counted): the page
then counts all its lists in one statement (`portal.db.tallies_get`) instead of one query
each, which was a third of the staff home's queries and most of their cost (issue #12).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from django.utils.functional import Promise

from portal.db import tallies_get


@dataclass(frozen=True)
class Link:
    label: str
    url: str
    detail: str = ""  # e.g. "waiting 3 days", shown beside the link


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


# A work list counts this far and then says "1000+": counting a city's thousands of
# waiting rows on every visit of a home page costs what the page should (issue #12).
COUNT_CAP = 1000


@dataclass(frozen=True)
class Tally:
    """A work list's count, not yet taken: how many `rows` there are (`capped`: no
    further than COUNT_CAP + 1), or with `total` the sum of that field over `rows`
    (e.g. the state counts PostgreSQL keeps). `link_group_list` takes every list's
    tally in one statement."""

    rows: QuerySet
    capped: bool = False
    total: str = ""


@dataclass(frozen=True)
class LinkGroup:
    title: str
    links: list[Link]
    # Work lists only: how many wait in all (links are the first few), and the filtered
    # list that shows them all; `more`: more than `count` (which is then COUNT_CAP).
    count: int | None = None
    all_url: str = ""
    name: str = ""
    more: bool = False


@dataclass(frozen=True)
class WorkList:
    """`count`: exact, or (`capped`, or a capped `Tally`) counted no further than
    COUNT_CAP + 1: past COUNT_CAP the list then shows "1000+". A `Tally` is counted
    with the page's other lists, in one statement."""

    count: int | Tally
    # The first few, or what lists them: called only if the count is not 0 (most lists
    # are empty most of the time, and their query is then not run).
    links: list[Link] | Callable[[], list[Link]]
    all_url: str = ""
    capped: bool = False


@dataclass(frozen=True)
class _Group:
    title: str | Promise
    links: Callable[[Any], list[Link]] | None = None
    work: Callable[[Any], WorkList | None] | None = None


_groups: dict[str, dict[str, _Group]] = {}


def link_group_register(
    slot: str, *, name: str, title: str | Promise, links: Callable[[Any], list[Link]]
) -> None:
    """Offer a group of links in `slot`: `links(obj)` lists them for the page's object.
    Registering a `name` again replaces the group."""
    _groups.setdefault(slot, {})[name] = _Group(title=title, links=links)


def work_list_register(
    slot: str, *, name: str, title: str | Promise, work: Callable[[Any], WorkList | None]
) -> None:
    """Offer a work list in `slot`: `work(obj)` gives it for the page's object, or None
    where it is not the user's to act on (it is then left out). Keep its queries
    independent of the data's size: a count and the first few rows."""
    _groups.setdefault(slot, {})[name] = _Group(title=title, work=work)


def link_group_list(slot: str, obj: Any = None) -> list[LinkGroup]:
    works: list[tuple[str, _Group, WorkList | None, list[Link]]] = []
    for name, entry in _groups.get(slot, {}).items():
        if entry.work is not None:
            works.append((name, entry, entry.work(obj), []))
        else:
            works.append((name, entry, None, entry.links(obj) if entry.links else []))
    # Every list's count in one statement.
    tallies = [w.count for _n, _e, w, _l in works if w is not None and isinstance(w.count, Tally)]
    counted = iter(
        tallies_get([(t.rows, t.total, COUNT_CAP + 1 if t.capped else None) for t in tallies])
    )
    groups = []
    for name, entry, work, links in works:
        if entry.work is None:
            if links:
                groups.append(LinkGroup(title=str(entry.title), links=links, name=name))
            continue
        if work is None:
            continue
        if isinstance(work.count, Tally):
            count, capped = next(counted), work.capped or work.count.capped
        else:
            count, capped = work.count, work.capped
        more = capped and count > COUNT_CAP
        links = work.links if not callable(work.links) else work.links() if count else []
        groups.append(
            LinkGroup(
                title=str(entry.title),
                links=links,
                count=COUNT_CAP if more else count,
                all_url=work.all_url,
                name=name,
                more=more,
            )
        )
    return groups
