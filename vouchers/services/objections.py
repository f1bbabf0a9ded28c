"""Objections to an application during its public notice, and their resolution by the
city (each open objection blocks approval; the objector is told the outcome)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from portal.audit import audit_record
from portal.errors import DomainError
from portal.locks import retry_on_deadlock
from portal.models import User
from portal.queue import publish_on_commit
from vouchers.models import Application, ApplicationState, Objection
from vouchers.services._steps import invalid, locked, require
from vouchers.tasks import application_notify

# Floods: objections per person and application.
MAX_OBJECTIONS_PER_PERSON = 3


def objection_raise(*, application: Application, actor: User, text: str) -> Objection:
    text = (text or "").strip()
    if not text:
        raise invalid("text", _("Write your objection."))
    with transaction.atomic():
        application = locked(application)
        if application.state != ApplicationState.IN_NOTICE or (
            application.notice_ends_at and timezone.now() > application.notice_ends_at
        ):
            raise DomainError(
                _("Objections are taken only during the public notice."), code="conflict"
            )
        # Each objection blocks approval until resolved: one person may not flood it.
        if (
            Objection.objects.filter(application=application, raised_by=actor).count()
            >= MAX_OBJECTIONS_PER_PERSON
        ):
            raise DomainError(
                _(
                    "You have already raised %(n)s objections to this application; the city "
                    "will answer them. Add to an existing one by contacting the city."
                )
                % {"n": MAX_OBJECTIONS_PER_PERSON},
                code="conflict",
            )
        objection = Objection.objects.create(
            application=application, raised_by=actor, text=text[:5000]
        )
        audit_record(
            action="objection.raise", city=application.city, actor=actor, target=application
        )
    return objection


@retry_on_deadlock()
def objection_resolve(*, objection: Objection, actor: User, resolution: str) -> Objection:
    resolution = (resolution or "").strip()
    if not resolution:
        raise invalid("resolution", _("Write how the objection was resolved."))
    with transaction.atomic():
        application = locked(objection.application)
        require(application, actor, "resolve_objection")
        objection = Objection.objects.select_for_update().get(pk=objection.pk)
        if objection.resolved_at is not None:
            raise DomainError(_("This objection is already resolved."), code="conflict")
        objection.resolution, objection.resolved_by = resolution, actor
        objection.resolved_at = timezone.now()
        objection.save()
        audit_record(
            action="objection.resolve", city=application.city, actor=actor, target=application
        )
        # The objector is told the outcome (ids only: the worker reads the committed row).
        application_id, objection_id = application.pk, objection.pk
        publish_on_commit(
            application_notify, application_id, "objection_resolved", objection_id=objection_id
        )
    return objection
