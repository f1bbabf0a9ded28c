"""State changes of the directory platform admins keep: cities, and users' platform
permissions (staff, superuser, active, groups, password). Each writes its audit event;
the admin site calls these instead of saving (portal/admin.py). City staff roles are
`portal.services.membership_grant/revoke`."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import Group
from django.db import transaction
from django.utils.translation import gettext as _

from portal.audit import audit_record
from portal.errors import DomainError
from portal.models import City, User

# What a change of a user says about the user (never the password's hash).
USER_FIELDS = (
    "email",
    "display_name",
    "preferred_language",
    "is_active",
    "is_staff",
    "is_superuser",
)


def _require_perm(actor: User, perm: str) -> None:
    if not actor.has_perm(perm):
        raise DomainError(_("Only platform admins may do this."), code="forbidden")


def city_save(*, actor: User, city: City, changed: Iterable[str], ip: str | None = None) -> City:
    """Create a city or save the fields named in `changed`."""
    created = city.pk is None
    _require_perm(actor, "portal.add_city" if created else "portal.change_city")
    changed = sorted(changed)
    with transaction.atomic():
        city.save()
        if created or changed:
            audit_record(
                action="city.create" if created else "city.update",
                actor=actor,
                target=city,
                data={"changed": changed, "values": {f: getattr(city, f) for f in changed}},
                ip=ip,
            )
    return city


def user_save(
    *,
    actor: User,
    user: User,
    changed: Iterable[str],
    groups: Iterable[Group] | None = None,
    ip: str | None = None,
) -> User:
    """Create a user or save the fields named in `changed` (and set their groups); the
    event names every permission the user holds afterwards, so a grant of superuser or
    staff is plain in the trail."""
    created = user.pk is None
    _require_perm(actor, "portal.add_user" if created else "portal.change_user")
    changed = sorted(f for f in changed if f not in ("password", "password1", "password2"))
    with transaction.atomic():
        user.save()
        before = set() if created else set(user.groups.values_list("name", flat=True))
        if groups is not None:
            user.groups.set(groups)
        after = set(user.groups.values_list("name", flat=True))
        if created or changed or before != after:
            audit_record(
                action="user.create" if created else "user.update",
                actor=actor,
                target=user,
                data={
                    "changed": changed,
                    **{f: getattr(user, f) for f in USER_FIELDS},
                    "groups": sorted(after),
                    "groups_added": sorted(after - before),
                    "groups_removed": sorted(before - after),
                },
                ip=ip,
            )
    return user


def user_password_set(*, actor: User, user: User, ip: str | None = None) -> None:
    """Record that a platform admin set a user's password (the admin's form sets it)."""
    _require_perm(actor, "portal.change_user")
    audit_record(action="user.password_set", actor=actor, target=user, data={}, ip=ip)
