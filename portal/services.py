"""State changes of the portal app: users' preferences and city staff roles (granted,
revoked, and offered by invitation to an address with no account yet). Program managers
change the roles of their city at /<city>/staff/members/, platform admins in the admin;
both go through these services, which write the audit events."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from portal.audit import SYSTEM, Actor, audit_record
from portal.errors import DomainError
from portal.models import City, CityMembership, Role, StaffInvitation, User
from portal.tasks import staff_invitation_send
from portal.tenancy import has_role


def user_set_language(*, actor: User, language: str) -> User:
    """The signed-in user's own language (the actor acts on their own account)."""
    if language not in dict(settings.LANGUAGES):
        raise DomainError(_("Unknown language."), fields={"language": [_("Unknown language.")]})
    if actor.preferred_language != language:
        User.objects.filter(pk=actor.pk).update(preferred_language=language)
        actor.preferred_language = language
    return actor


def membership_grant(
    *, actor: Actor, city: City, user: User, role: str, ip: str | None = None
) -> CityMembership:
    """Give `user` a staff role in `city`. Platform admins and the city's program managers may."""
    if role not in Role.values:
        raise DomainError(_("Unknown role."), fields={"role": [_("Unknown role.")]})
    if actor is not SYSTEM and not (
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


def membership_revoke(*, actor: Actor, membership: CityMembership, ip: str | None = None) -> None:
    """Take a staff role away. A program manager may not remove the city's last program
    manager (nobody would be left to grant roles); a platform admin may."""
    city = membership.city
    if actor is not SYSTEM and not (
        actor.is_superuser or has_role(actor, city, Role.PROGRAM_MANAGER)
    ):
        raise DomainError(_("Only program managers may revoke staff roles."), code="forbidden")
    if (
        actor is not SYSTEM
        and not actor.is_superuser
        and membership.role == Role.PROGRAM_MANAGER
        and not CityMembership.objects.filter(city=city, role=Role.PROGRAM_MANAGER)
        .exclude(pk=membership.pk)
        .exists()
    ):
        raise DomainError(
            _(
                "This is the city's last program manager: grant the role to someone else "
                "first, or ask a platform administrator."
            ),
            code="conflict",
        )
    with transaction.atomic():
        # The row goes before the audit event: nothing is locked after the audit lock
        # (portal/locks.py). The event still names the membership that was deleted.
        pk, data = membership.pk, {"user": membership.user.email, "role": membership.role}
        membership.delete()
        membership.pk = pk
        audit_record(
            action="membership.revoke", city=city, actor=actor, target=membership, data=data, ip=ip
        )


def membership_invite(
    *, actor: User, city: City, email: str, role: str, ip: str | None = None
) -> CityMembership | StaffInvitation:
    """Give the role to whoever has an account with this e-mail address (a grant), or
    else invite the address: the invitation's link, sent by e-mail, grants the role once
    its owner has signed in with that address. Program managers of the city and platform
    admins may."""
    email = (email or "").strip().lower()
    if "@" not in email or len(email) > 254:
        raise DomainError(
            _("Give an e-mail address."), fields={"email": [_("Give an e-mail address.")]}
        )
    if role not in Role.values:
        raise DomainError(_("Unknown role."), fields={"role": [_("Unknown role.")]})
    if not (actor.is_superuser or has_role(actor, city, Role.PROGRAM_MANAGER)):
        raise DomainError(_("Only program managers may grant staff roles."), code="forbidden")
    user = User.objects.filter(email__iexact=email).first()
    if user is not None:
        if not user.is_active:
            raise DomainError(
                _("This account is deactivated."),
                fields={"email": [_("This account is deactivated.")]},
            )
        return membership_grant(actor=actor, city=city, user=user, role=role, ip=ip)
    with transaction.atomic():
        invitation = StaffInvitation.objects.filter(
            city=city, email=email, role=role, accepted_at__isnull=True
        ).first()
        if invitation is None:
            invitation = StaffInvitation.objects.create(
                city=city,
                email=email,
                role=role,
                token=secrets.token_urlsafe(32),
                invited_by=actor,
            )
        audit_record(
            action="membership.invite",
            city=city,
            actor=actor,
            target=invitation,
            data={"email": email, "role": role},
            ip=ip,
        )
        transaction.on_commit(lambda: staff_invitation_send.delay(invitation.pk))
    return invitation


def staff_invitation_accept(
    *, city: City, token: str, actor: User, ip: str | None = None
) -> CityMembership:
    """The invitee, signed in with the invited address, takes the role. Any other
    account, a used or unknown token, or another city's: not found."""
    with transaction.atomic():
        invitation = (
            StaffInvitation.objects.select_for_update()
            .filter(city=city, token=token, accepted_at__isnull=True)
            .first()
        )
        if invitation is None or invitation.email != (actor.email or "").lower():
            raise DomainError(_("This invitation is not valid for your account."), code="not_found")
        invitation.accepted_at = timezone.now()
        invitation.save(update_fields=["accepted_at"])
        # The grant is the inviting program manager's decision, taken when they invited.
        membership = CityMembership.objects.get_or_create(
            user=actor, city=city, role=invitation.role
        )[0]
        audit_record(
            action="membership.grant",
            city=city,
            actor=actor,
            target=membership,
            data={
                "user": actor.email,
                "role": invitation.role,
                "invitation": invitation.pk,
                "invited_by": invitation.invited_by.email if invitation.invited_by else "",
            },
            ip=ip,
        )
    return membership
