"""Reviews: program managers assign the city's reviewers; each declares any conflict of
interest, then scores the rubric; the last review due concludes the application."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from portal.audit import SYSTEM, audit_record
from portal.errors import DomainError
from portal.models import Role, User
from portal.queue import publish_on_commit
from portal.tenancy import has_role
from vouchers import workflow
from vouchers.models import Application, ApplicationState, Review
from vouchers.notes import tally_note
from vouchers.services._steps import (
    MEMBER_STAFF_MESSAGE,
    invalid,
    locked,
    require,
    step,
    to_not_recommended,
    to_recommended,
)
from vouchers.tasks import review_assigned_notify


def review_assign(*, application: Application, actor: User, reviewer: User) -> Review:
    with transaction.atomic():
        application = locked(application)
        if not workflow.parties(application, actor):
            # Someone with no part in the application's city finds it missing, as in
            # every other step ("missing" and "not yours" look the same).
            raise DomainError(_("Not found."), code="not_found")
        if not has_role(actor, application.city, Role.PROGRAM_MANAGER):
            raise DomainError(_("Only program managers assign reviewers."), code="forbidden")
        if not workflow.allowed("assign", application.state, {workflow.MANAGER}):
            raise DomainError(_("Reviewers cannot be assigned in this state."), code="conflict")
        if not has_role(reviewer, application.city, Role.REVIEWER):
            raise invalid("reviewer", _("Choose a reviewer of this city."))
        if application.company.members.filter(pk=reviewer.pk).exists():
            raise invalid("reviewer", _("This reviewer is a member of the applicant company."))
        if application.company.members.filter(pk=actor.pk).exists():
            raise DomainError(_(MEMBER_STAFF_MESSAGE), code="forbidden")
        review, created = Review.objects.get_or_create(
            application=application, reviewer=reviewer, defaults={"assigned_by": actor}
        )
        if created:
            audit_record(
                action="review.assign",
                city=application.city,
                actor=actor,
                target=application,
                data={"reviewer": reviewer.email},
            )
            publish_on_commit(review_assigned_notify, review.pk)
    return review


def _own_review(application: Application, actor: User) -> Review:
    review = (
        Review.objects.select_for_update().filter(application=application, reviewer=actor).first()
    )
    if review is None:
        raise DomainError(_("You are not assigned to this application."), code="forbidden")
    return review


def review_declare(
    *, application: Application, actor: User, conflict: bool, note: str = ""
) -> Review:
    """Before scoring, the reviewer declares whether they have a conflict of interest.
    A declared conflict ends their part in this application."""
    with transaction.atomic():
        application = locked(application)
        review = _own_review(application, actor)
        if review.conflict is not None:
            raise DomainError(_("You have already declared."), code="conflict")
        review.conflict, review.conflict_note = bool(conflict), (note or "")[:300]
        review.save(update_fields=["conflict", "conflict_note"])
        audit_record(
            action="review.declare",
            city=application.city,
            actor=actor,
            target=application,
            data={"conflict": review.conflict, "note": review.conflict_note},
        )
    return review


def _conclude(application: Application) -> None:
    """Once the required reviews are in: most recommend → recommended (or in notice),
    most do not → not recommended, an even split → tie_break (the program manager adds
    a reviewer or decides). In tie_break each further review concludes again; a split
    that stays even leaves it there."""
    done = list(application.reviews.filter(submitted_at__isnull=False, conflict=False))
    if len(done) < application.program.reviews_required:
        return
    yes = sum(1 for r in done if r.recommend)
    note = tally_note(yes, len(done))  # stored in English, shown by vouchers.notes
    if yes * 2 > len(done):
        to_recommended(application, action="conclude_reviews", actor=SYSTEM, note=note)
    elif yes * 2 == len(done):
        if application.state != ApplicationState.TIE_BREAK:
            step(
                application,
                action="conclude_reviews",
                actor=SYSTEM,
                target=ApplicationState.TIE_BREAK,
                note=note,
                notify="tie_break",
            )
    else:
        to_not_recommended(application, action="conclude_reviews", actor=SYSTEM, reason=note)


def review_submit(
    *,
    application: Application,
    actor: User,
    scores: dict[str, int],
    comment: str,
    recommend: bool,
) -> Review:
    with transaction.atomic():
        application = locked(application)
        require(application, actor, "review")
        review = _own_review(application, actor)
        if review.conflict is None:
            raise DomainError(_("Declare any conflict of interest first."), code="conflict")
        if review.conflict:
            raise DomainError(
                _("You declared a conflict of interest; you cannot score."), code="forbidden"
            )
        if review.submitted_at is not None:
            raise DomainError(_("Your review is already submitted."), code="conflict")
        rubric = application.program.rubric or []
        errors: dict[str, list[str]] = {}
        total = Decimal("0")
        clean: dict[str, int] = {}
        for criterion in rubric:
            value = scores.get(criterion["name"])
            if not isinstance(value, int) or not 0 <= value <= criterion["max"]:
                errors[criterion["name"]] = [
                    _("A whole number from 0 to %(max)s.") % {"max": criterion["max"]}
                ]
                continue
            clean[criterion["name"]] = value
            total += Decimal(str(criterion["weight"])) * value
        if errors:
            raise DomainError(_("Please correct the scores."), fields=errors)
        review.scores, review.total, review.comment = clean, total, (comment or "").strip()
        review.recommend, review.submitted_at = bool(recommend), timezone.now()
        review.save()
        _conclude(application)
        # Last: nothing is locked or written after the audit lock (portal/locks.py).
        audit_record(
            action="review.submit",
            city=application.city,
            actor=actor,
            target=application,
            data={"total": str(total), "recommend": review.recommend},
        )
    return review


def application_break_tie(
    *, application: Application, actor: User, recommend: bool, reason: str
) -> Application:
    """The program manager decides an evenly split application's recommendation, with a
    reason (the other way out of tie_break is assigning another reviewer)."""
    reason = (reason or "").strip()
    if not reason:
        raise invalid("reason", _("Give a reason."))
    with transaction.atomic():
        application = locked(application)
        require(application, actor, "break_tie")
        if recommend:
            return to_recommended(application, action="break_tie", actor=actor, note=reason)
        return to_not_recommended(application, action="break_tie", actor=actor, reason=reason)
