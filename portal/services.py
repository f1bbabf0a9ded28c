"""State changes of the portal app: users' preferences and city staff roles."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _

from portal.audit import audit_record
from portal.errors import DomainError
from portal.models import City, CityMembership, Role, User
from portal.tenancy import has_role


def user_set_language(*, user: User, language: str) -> User:
    if language not in dict(settings.LANGUAGES):
        raise DomainError(_("Unknown language."), fields={"language": [_("Unknown language.")]})
    if user.preferred_language != language:
        User.objects.filter(pk=user.pk).update(preferred_language=language)
        user.preferred_language = language
    return user


def membership_grant(
    *, actor: User | None, city: City, user: User, role: str, ip: str | None = None
) -> CityMembership:
    """Give `user` a staff role in `city`. Platform admins and the city's program managers may."""
    if role not in Role.values:
        raise DomainError(_("Unknown role."), fields={"role": [_("Unknown role.")]})
    if actor is not None and not (
        actor.is_superuser or has_role(actor, city, Role.PROGRAM_MANAGER)
    ):
        raise DomainError(_("Only program managers may grant staff roles."), code="forbidden")
    with transaction.atomic():
        membership, created = CityMembership.objects.get_or_create(user=user, city=city, role=role)
        if created:
            audit_record(
                action="membership.grant",
                city=city,
                actor=actor,
                target=membership,
                data={"user": user.email, "role": role},
                ip=ip,
            )
    return membership


def membership_revoke(
    *, actor: User | None, membership: CityMembership, ip: str | None = None
) -> None:
    city = membership.city
    if actor is not None and not (
        actor.is_superuser or has_role(actor, city, Role.PROGRAM_MANAGER)
    ):
        raise DomainError(_("Only program managers may revoke staff roles."), code="forbidden")
    with transaction.atomic():
        # The row goes before the audit event: nothing is locked after the audit lock
        # (portal/locks.py). The event still names the membership that was deleted.
        pk, data = membership.pk, {"user": membership.user.email, "role": membership.role}
        membership.delete()
        membership.pk = pk
        audit_record(
            action="membership.revoke", city=city, actor=actor, target=membership, data=data, ip=ip
        )
