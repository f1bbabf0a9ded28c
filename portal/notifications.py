"""Notifications: every message the portal e-mails to a user is also an entry in their
list in the portal (/accounts/notifications/), and each user chooses, per kind, whether
they also want the e-mail (the entry is always made).

Apps register their kinds (`notification_kind_register`, from `AppConfig.ready()`), so
the profile page lists them without portal knowing the apps. `notify` is called by the
workers, inside the recipient's language; every e-mail ends with the absolute link to
the page to act on, built from `settings.SITE_URL` (`portal.http.absolute_url`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import F, QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.translation import gettext as _

from portal.errors import DomainError
from portal.http import absolute_url
from portal.models import Notification, User

# kind → its label (lazy), in registration order.
KINDS: dict[str, Any] = {}


def notification_kind_register(kind: str, label: Any) -> None:
    KINDS.setdefault(kind, label)


def email_wanted(user: User, kind: str) -> bool:
    return kind not in (user.email_off or [])


def with_link(body: str, path: str) -> str:
    """The e-mail's text: the message, then the absolute link to the page."""
    if not path:
        return body
    return body + "\n\n" + _("On the portal: %(link)s") % {"link": absolute_url(path)}


def notify(
    *,
    user: User,
    kind: str,
    subject: str,
    body: str,
    path: str = "",
    attachments: Iterable[tuple[str, bytes, str]] = (),
) -> Notification:
    """The in-portal entry, always; the e-mail (with `attachments`, each (name, bytes,
    content type)) unless the user turned off e-mail for this kind. Call it in the
    recipient's language."""
    with transaction.atomic():
        entry = Notification.objects.create(
            user=user, kind=kind, subject=subject[:300], body=body, path=path[:500]
        )
        User.objects.filter(pk=user.pk).update(unread_notifications=F("unread_notifications") + 1)
    if email_wanted(user, kind):
        message = EmailMessage(
            subject, with_link(body, path), settings.DEFAULT_FROM_EMAIL, [user.email]
        )
        for name, content, content_type in attachments:
            message.attach(name, content, content_type)
        message.send()
    return entry


# --- reads --------------------------------------------------------------------------------


def notification_list(*, user: User) -> QuerySet[Notification]:
    """The user's own notifications, newest first."""
    return Notification.objects.filter(user=user).order_by("-created_at", "-id")


def notification_get(*, user: User, pk: int) -> Notification:
    """Another user's notification is a 404, like a missing one."""
    return get_object_or_404(Notification, pk=pk, user=user)


# --- the reader's own changes ------------------------------------------------------------------


def notification_read(*, actor: User, notification: Notification) -> None:
    """Mark one read (once: the unread count drops only if it was unread)."""
    if notification.user_id != actor.pk:
        raise DomainError(_("Not found."), code="not_found")
    with transaction.atomic():
        changed = Notification.objects.filter(pk=notification.pk, read_at__isnull=True).update(
            read_at=timezone.now()
        )
        if changed:
            User.objects.filter(pk=actor.pk, unread_notifications__gt=0).update(
                unread_notifications=F("unread_notifications") - 1
            )


def notification_read_all(*, actor: User) -> int:
    with transaction.atomic():
        changed = Notification.objects.filter(user=actor, read_at__isnull=True).update(
            read_at=timezone.now()
        )
        User.objects.filter(pk=actor.pk).update(unread_notifications=0)
    return changed


def notification_settings_save(*, actor: User, email_kinds: Iterable[str]) -> list[str]:
    """Keep e-mail for `email_kinds`, none for the other registered kinds."""
    wanted = set(email_kinds)
    off = sorted(kind for kind in KINDS if kind not in wanted)
    User.objects.filter(pk=actor.pk).update(email_off=off)
    actor.email_off = off
    return off
