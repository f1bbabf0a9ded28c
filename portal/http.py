"""Small helpers shared by the apps' views: reading posted ids (anything but a plain
positive number is a 404, never a ValueError from the ORM), paging lists, and absolute
links for e-mails."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, TypeVar

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404

if TYPE_CHECKING:
    from portal.models import City, User

M = TypeVar("M", bound=Model)


class CityRequest(HttpRequest):
    """A request under `/<city_slug>/`, for the type checker: TenancyMiddleware has set
    `city` (an unknown city was a 404 before the view ran)."""

    city: City


class SignedInRequest(CityRequest):
    """A request past `login_required` or `staff_required`: `user` is a real account.
    `city` is set only under a city's addresses; the views that read it are there."""

    user: User


_MAX_ID = 2**63 - 1


def parse_id(value: object) -> int | None:
    text = str(value or "").strip()
    # A bigint has at most 19 digits; int() of thousands raises (or takes long).
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    number = int(text)
    return number if 0 < number <= _MAX_ID else None


def parse_ids(values: Iterable[object]) -> list[int]:
    return [n for n in (parse_id(v) for v in values) if n is not None]


def posted_object_or_404(queryset: QuerySet[M] | type[M], value: object, **filters) -> M:
    number = parse_id(value)
    if number is None:
        raise Http404
    return get_object_or_404(queryset, pk=number, **filters)


PAGE_SIZE = 50


def page_of(
    request: HttpRequest, items, size: int = PAGE_SIZE, *, count: int | None = None
) -> Page:
    """The page the request asks for (`?page=`); out-of-range or garbage gives a valid page.
    `count`, when the caller knows how many items there are (from a maintained count),
    spares counting them."""
    paginator = Paginator(items, size)
    if count is not None:
        paginator.count = count  # a cached_property: set, it is not computed
    return paginator.get_page(request.GET.get("page"))


def absolute_url(path: str) -> str:
    """The address of a page of this site for an e-mail, from `settings.SITE_URL` (the
    running server's own address: `make demo` sets it to its host and port). Read at
    each call, so a worker sends what the settings say now."""
    return settings.SITE_URL.rstrip("/") + path
