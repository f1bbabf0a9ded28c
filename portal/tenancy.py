"""Resolving the city of a request and guarding staff pages by role.

The rule for every tenant page: a user with no role in the city gets the same 404 as
for a city that does not exist, so nothing tells an outsider what another city holds.
A staff member of the city whose role does not allow the page gets a 403.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse

from portal.models import STAFF_ROLES, City, CityMembership


def city_for_slug(slug: str) -> City:
    """The active city with this slug, or 404."""
    try:
        return City.objects.get(slug=slug, is_active=True)
    except City.DoesNotExist:
        raise Http404("No such city.") from None


def roles_in_city(user: Any, city: City) -> frozenset[str]:
    """The staff roles `user` holds in `city` (empty for anonymous users and outsiders)."""
    if not getattr(user, "is_authenticated", False):
        return frozenset()
    cache = getattr(user, "_city_roles_cache", None)
    if cache is None:
        cache = {}
        user._city_roles_cache = cache
    if city.pk not in cache:
        cache[city.pk] = frozenset(
            CityMembership.objects.filter(user=user, city=city).values_list("role", flat=True)
        )
    return cache[city.pk]


def has_role(user: Any, city: City, *roles: str) -> bool:
    return bool(roles_in_city(user, city) & set(roles))


def staff_required(*roles: str) -> Callable:
    """Guard a city view: anonymous → login; no role in this city → 404; other role → 403.

    With no roles given, any staff role of the city may enter (read-only pages).
    """
    allowed: frozenset[str] = frozenset(roles) if roles else STAFF_ROLES

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            city = getattr(request, "city", None)
            if city is None:
                raise Http404
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            held = roles_in_city(request.user, city)
            if not held:
                raise Http404
            if not held & allowed:
                raise PermissionDenied
            return view(request, *args, **kwargs)

        wrapped.staff_roles = allowed  # type: ignore[attr-defined]
        return wrapped

    return decorator


def cities_of(user: Any) -> Iterable[City]:
    """Cities where the user holds any staff role."""
    if not getattr(user, "is_authenticated", False):
        return City.objects.none()
    return City.objects.filter(is_active=True, memberships__user=user).distinct()
