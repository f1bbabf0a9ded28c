from __future__ import annotations

from django.http import HttpRequest

from portal.models import Role
from portal.tenancy import cities_of, roles_in_city


def navigation(request: HttpRequest) -> dict:
    """What the navigation needs: the current city and the user's roles in it."""
    city = getattr(request, "city", None)
    roles = (
        roles_in_city(request.user, city)
        if city is not None and hasattr(request, "user")
        else frozenset()
    )
    return {
        "current_city": city,
        "city_roles": roles,
        "is_city_staff": bool(roles),
        # Program managers and auditors export the city's lists (portal/exports.py).
        "can_export_city": bool(roles & {Role.PROGRAM_MANAGER, Role.AUDITOR}),
        "staff_cities": cities_of(getattr(request, "user", None)),
    }
