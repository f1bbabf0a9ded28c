"""Reads for the portal's screens. Each tenant read takes the city it is scoped to."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from portal.models import AuditEvent, City, CityMembership


def city_list_active() -> QuerySet[City]:
    return City.objects.filter(is_active=True).order_by("slug")


def membership_list(*, city: City) -> QuerySet[CityMembership]:
    return (
        CityMembership.objects.filter(city=city)
        .select_related("user")
        .order_by("user__email", "role")
    )


def audit_event_list(*, city: City, query: str = "") -> QuerySet[AuditEvent]:
    qs = AuditEvent.objects.filter(city=city).order_by("-seq")
    if query:
        qs = qs.filter(
            Q(action__icontains=query)
            | Q(actor_label__icontains=query)
            | Q(target_id=query)
            | Q(target_type__icontains=query)
        )
    return qs
