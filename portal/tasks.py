from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _

from portal.audit import audit_chain_verify as _verify
from portal.http import absolute_url
from portal.models import Role, StaffInvitation

log = logging.getLogger(__name__)


@shared_task(acks_late=True, time_limit=3600, soft_time_limit=3500)
def audit_chain_verify() -> int:
    """Nightly check of the audit chains; a broken link is logged as an error."""
    problems = _verify()
    for problem in problems:
        log.error("audit chain broken: %s", problem.describe())
    return len(problems)


@shared_task(acks_late=True, time_limit=120, soft_time_limit=110)
def staff_invitation_send(invitation_id: int) -> None:
    """The invitation to a staff role, in the site's language (the address has no account
    yet, so no language of its own), with the absolute link that accepts it."""
    invitation = StaffInvitation.objects.select_related("city").get(pk=invitation_id)
    with translation.override(settings.LANGUAGE_CODE):
        city = invitation.city.name
        send_mail(
            _("[Suanli] You are invited to the staff of %(city)s") % {"city": city},
            _(
                "You are invited to be %(role)s of %(city)s on Suanli. Register or sign in "
                "with this address (%(email)s), then open %(link)s to accept."
            )
            % {
                "role": Role(invitation.role).label,
                "city": city,
                "email": invitation.email,
                "link": absolute_url(
                    reverse(
                        "portal:staff_join",
                        kwargs={"city_slug": invitation.city.slug, "token": invitation.token},
                    )
                ),
            },
            settings.DEFAULT_FROM_EMAIL,
            [invitation.email],
        )


@shared_task(acks_late=True, time_limit=600, soft_time_limit=570)
def audit_anchor_task() -> int:
    """Daily: anchor the head of every audit chain outside the database (portal.anchors)
    and e-mail it to the auditors. Returns the number of chains anchored."""
    from portal.anchors import anchors_mail, anchors_write

    records = anchors_write()
    anchors_mail(records)
    log.info("audit chains anchored: %d", len(records))
    return len(records)
