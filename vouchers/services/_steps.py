"""What every workflow service shares: locking the application, checking the actor's
party and the state against `vouchers.workflow`, and taking a step (the state, the
timeline, the audit event and the notification after commit)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from django.utils.translation import gettext as _

from portal.audit import Actor, actor_name, audit_record
from portal.errors import DomainError
from portal.models import User
from portal.queue import publish_on_commit
from vouchers import workflow
from vouchers.letters import letter_issue
from vouchers.models import Application, ApplicationState, LetterKind, StateChange
from vouchers.tasks import application_notify
from vouchers.workflow import MEMBER_STAFF_MESSAGE

__all__ = ["MEMBER_STAFF_MESSAGE", "invalid", "locked", "require", "step", "to_recommended"]


def invalid(field: str, message: str) -> DomainError:
    return DomainError(message, code="invalid", fields={field: [message]})


def locked(application: Application) -> Application:
    return (
        Application.objects.select_for_update(of=("self",))
        .select_related("city", "program", "company")
        .get(pk=application.pk)
    )


def require(application: Application, actor: User, action: str) -> None:
    who = workflow.parties(application, actor)
    if not who:
        raise DomainError(_("Not found."), code="not_found")
    if workflow.MEMBER in who and workflow.MEMBER not in workflow.parties_of(action):
        # Staff of the city who also belong to the applicant company take no staff step
        # on its application: screening, reviewing or deciding one's own case.
        raise DomainError(_(MEMBER_STAFF_MESSAGE), code="forbidden")
    if not workflow.allowed(action, application.state, who):
        # The wrong party is refused as such for transitions and staff actions alike
        # (resolving an objection as a reviewer said "conflict", as if a later state
        # could allow it).
        if not (workflow.parties_of(action) & who):
            raise DomainError(_("Your role does not allow this step."), code="forbidden")
        raise DomainError(
            _("This application is %(state)s; that step is not possible now.")
            % {"state": application.get_state_display()},
            code="conflict",
        )


# The decisions that produce a letter (通知书), issued in the decision's transaction.
# An approval's letter takes its number before the voucher's audit event, so
# `application_approve` passes it in (`letter_number`).
LETTERS = {
    ApplicationState.NOT_RECOMMENDED: LetterKind.NOT_RECOMMENDED,
    ApplicationState.REJECTED: LetterKind.REJECTION,
}


def step(
    application: Application,
    *,
    action: str,
    actor: Actor,
    target: str,
    note: str = "",
    notify: str = "",
    letter_number: tuple[int, int] | None = None,
) -> Application:
    """Move a locked application along the table; the caller has checked the rules.
    A decision's letter is issued here, before the audit event (portal/locks.py)."""
    transition = workflow.TRANSITIONS[action]
    if application.state not in transition.sources or target not in transition.targets:
        raise DomainError(
            _("This application is %(state)s; that step is not possible now.")
            % {"state": application.get_state_display()},
            code="conflict",
        )
    before = application.state
    application.state = target
    application.save()
    if letter_number is not None:
        letter_issue(application=application, kind=LetterKind.APPROVAL, number=letter_number)
    elif target in LETTERS:
        letter_issue(application=application, kind=LETTERS[ApplicationState(target)])
    change = StateChange.objects.create(
        application=application,
        from_state=before,
        to_state=target,
        actor_label=actor_name(actor),
        note=note[:2000],
    )
    audit_record(
        action=f"application.{action}",
        city=application.city,
        actor=actor,
        target=application,
        data={"from": before, "to": target, "note": note[:500]},
    )
    if notify:
        # The change's id, not just the application's: the worker may run after a later
        # step has replaced the application's reason or question.
        publish_on_commit(application_notify, application.pk, notify, change.pk)
    return application


def to_not_recommended(
    application: Application, *, action: str, actor: Actor, reason: str
) -> Application:
    """Not recommended, with the reason the company is told (its decision letter too)."""
    application.decision_reason = reason
    return step(
        application,
        action=action,
        actor=actor,
        target=ApplicationState.NOT_RECOMMENDED,
        note=reason,
        notify="not_recommended",
    )


def to_recommended(
    application: Application, *, action: str, actor: Actor, note: str
) -> Application:
    """Recommended, and straight into public notice when the program has one."""
    days = application.program.notice_days
    if days > 0:
        application.notice_ends_at = timezone.now() + timedelta(days=days)
        return step(
            application,
            action=action,
            actor=actor,
            target=ApplicationState.IN_NOTICE,
            note=note,
            notify="in_notice",
        )
    return step(
        application,
        action=action,
        actor=actor,
        target=ApplicationState.RECOMMENDED,
        note=note,
        notify="recommended",
    )
