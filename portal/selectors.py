"""Reads for the portal's screens, and the naming every app's selectors keep.

A selector is `<noun>_list` (a queryset) or `<noun>_get` (one object). Each takes what it
is scoped to as a keyword (the city, the user, the data center, the parent object), so
another tenant's objects are simply not there; `_get` raises `Http404` for "missing" and
"not yours" alike. A noun read under more than one scope takes exactly one of them
(`one_scope`), never none: a forgotten scope is an error, not every tenant's rows.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404

from portal.audit_labels import audit_action_filter, audit_action_search
from portal.models import AuditEvent, City, CityMembership, StaffInvitation, User


def one_scope(**scopes: object) -> str:
    """The name of the one scope given (not None); a TypeError unless exactly one is."""
    given = [name for name, value in scopes.items() if value is not None]
    if len(given) != 1:
        raise TypeError(f"give exactly one of {', '.join(scopes)}, not {given or 'none'}")
    return given[0]


def city_list() -> QuerySet[City]:
    """The active cities, for the landing page."""
    return City.objects.filter(is_active=True).order_by("slug")


def membership_list(
    *, city: City | None = None, user: User | None = None
) -> QuerySet[CityMembership]:
    """The city's staff (for its members page), or the user's roles (for their profile)."""
    if one_scope(city=city, user=user) == "user":
        return CityMembership.objects.filter(user=user).select_related("city")
    return (
        CityMembership.objects.filter(city=city)
        .select_related("user")
        .order_by("user__email", "role")
    )


def membership_get(*, city: City, pk: int) -> CityMembership:
    return get_object_or_404(membership_list(city=city), pk=pk)


def staff_invitation_list(*, city: City) -> QuerySet[StaffInvitation]:
    """The city's invitations not yet accepted, newest first."""
    return StaffInvitation.objects.filter(city=city, accepted_at__isnull=True).order_by(
        "-created_at"
    )


def audit_event_list(
    *,
    city: City,
    query: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
    actor: str = "",
    action: str = "",
    target_type: str = "",
    target_id: str = "",
) -> QuerySet[AuditEvent]:
    """The city's events, newest first: `since` inclusive, `until` exclusive; `actor`
    part of who acted; `action` a code or a family (`export.*`); `query` matches a code,
    an action's label in the active language, an actor or an object id."""
    qs = AuditEvent.objects.filter(city=city).order_by("-seq")
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    if until is not None:
        qs = qs.filter(created_at__lt=until)
    if actor:
        qs = qs.filter(actor_label__icontains=actor)
    if action:
        qs = qs.filter(audit_action_filter(action))
    if target_type:
        qs = qs.filter(target_type=target_type)
    if target_id:
        qs = qs.filter(target_id=target_id)
    if query:
        qs = qs.filter(
            Q(action__icontains=query)
            | Q(action__in=audit_action_search(query))
            | Q(actor_label__icontains=query)
            | Q(target_id=query)
            | Q(target_type__icontains=query)
        )
    return qs
