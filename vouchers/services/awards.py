"""Awards awaiting acceptance: when a program has an acceptance step
(`Program.acceptance_days`), approval reserves the award from the budget and the
company accepts it (the voucher is issued then) or declines it within the window; an
award left unanswered lapses (`vouchers.jobs.awards_lapse_due`, nightly). Declined and
lapsed awards give their reservation back to the budget, so `verify_ledger`'s rule
"reserved = the awards awaiting acceptance" holds after every step.

Lock order, as approval: application → program → audit chain.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from portal.audit import SYSTEM, Actor
from portal.citytime import city_datetime
from portal.errors import DomainError
from portal.locks import retry_on_deadlock
from portal.models import User
from vouchers.ledger import award_release, voucher_issue
from vouchers.models import Application, ApplicationState, Voucher
from vouchers.services._steps import locked, require, step


def _open_window(application: Application) -> None:
    ends = application.award_expires_at
    if ends is not None and timezone.now() >= ends:
        raise DomainError(
            _("The time to accept this award ended at %(when)s.")
            % {"when": city_datetime(ends, application.city)},
            code="conflict",
        )


@retry_on_deadlock()
def award_accept(*, application: Application, actor: User) -> Voucher:
    """The company accepts its award: the reservation becomes the voucher."""
    with transaction.atomic():
        application = locked(application)
        require(application, actor, "accept_award")
        _open_window(application)
        amount = application.awarded_amount
        voucher = voucher_issue(
            program=application.program,
            company=application.company,
            amount=amount,
            actor=actor,
            memo=f"application {application.pk}",
            from_reserve=True,
        )
        voucher.application = application
        voucher.save(update_fields=["application"])
        application.award_answered_at = timezone.now()
        step(
            application,
            action="accept_award",
            actor=actor,
            target=ApplicationState.APPROVED,
            note=voucher.code,
            notify="approved",
        )
    return voucher


def _release(application: Application, *, action: str, actor: Actor, target: str) -> None:
    award_release(program=application.program, amount=application.awarded_amount)
    application.award_answered_at = timezone.now()
    step(
        application,
        action=action,
        actor=actor,
        target=target,
        note=f"¥{application.awarded_amount:,.2f}",
        notify=target,
    )


@retry_on_deadlock()
def award_decline(*, application: Application, actor: User) -> Application:
    """The company declines its award: the amount returns to the program's budget."""
    with transaction.atomic():
        application = locked(application)
        require(application, actor, "decline_award")
        _release(application, action="decline_award", actor=actor, target=ApplicationState.DECLINED)
    return application


@retry_on_deadlock()
def award_lapse(*, application: Application) -> bool:
    """An award whose acceptance window has passed lapses (the system's step); False if
    it was answered meanwhile or its window is still open."""
    with transaction.atomic():
        application = locked(application)
        if application.state != ApplicationState.AWARDED or (
            application.award_expires_at and timezone.now() < application.award_expires_at
        ):
            return False
        _release(application, action="lapse_award", actor=SYSTEM, target=ApplicationState.LAPSED)
    return True
