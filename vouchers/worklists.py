"""What waits for whom in the application workflow: each work list's rule, in one place.

The staff home counts and lists the first items of each list (`vouchers.links`), and the
queue filters by the same rule (`?todo=…`, `?assigned=me`), so the count a role sees on
its home is the length of the list its link opens. Every rule is one `Q` over
`Application`, so a count is one query whatever the data's size.
"""

from __future__ import annotations

from django.db.models import Exists, OuterRef, Q, Subquery, TextChoices
from django.db.models.lookups import Exact
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from portal.models import Role, User
from vouchers.models import (
    REVIEW_STATES,
    ApplicationState,
    CompanyMember,
    InfoRequest,
    Objection,
    Review,
    StateChange,
)

S = ApplicationState


class Todo(TextChoices):
    """The queue's work-list filters (`?todo=`)."""

    SCREEN = "screen", _("To screen")
    INFO_ANSWERED = "info_answered", _("Information request answered")
    OBJECTIONS = "objections", _("Objections to resolve")
    APPROVE = "approve", _("Ready to approve")
    NOTICE_WAITING = "notice_waiting", _("Waiting before approval")


# The roles each work list is for (the workflow's table decides who may act).
TODO_ROLES: dict[str, frozenset[str]] = {
    Todo.SCREEN: frozenset({Role.REVIEWER, Role.PROGRAM_MANAGER}),
    Todo.INFO_ANSWERED: frozenset({Role.REVIEWER, Role.PROGRAM_MANAGER}),
    Todo.OBJECTIONS: frozenset({Role.PROGRAM_MANAGER, Role.APPROVER}),
    Todo.APPROVE: frozenset({Role.APPROVER}),
    Todo.NOTICE_WAITING: frozenset({Role.APPROVER}),
}


def _open_objection() -> Exists:
    return Exists(Objection.objects.filter(application=OuterRef("pk"), resolved_at__isnull=True))


def _answered_last() -> Q:
    """The application's latest step was the company's answer to an information request
    (it came back from `info_requested`) and nobody has moved it since."""
    latest_from = (
        StateChange.objects.filter(application=OuterRef("pk"))
        .order_by("-at", "-pk")
        .values("from_state")[:1]
    )
    # Implied by the rule, and what lets PostgreSQL start from the few answered requests
    # (a partial index) instead of reading the latest step of every application.
    answered = StateChange.objects.filter(from_state=S.INFO_REQUESTED).values("application")
    return (
        Q(state__in=[S.SCREENING, S.IN_REVIEW])
        & Q(pk__in=answered)
        & Q(Exact(Subquery(latest_from), S.INFO_REQUESTED.value))
    )


def todo_filter(todo: str, *, user: User, roles: frozenset[str]) -> Q:
    """The rule of one work list for `user`, who holds `roles` in the city."""
    now = timezone.now()
    if todo == Todo.SCREEN:
        return Q(state__in=[S.SUBMITTED, S.SCREENING])
    if todo == Todo.INFO_ANSWERED:
        rule = _answered_last()
        if Role.PROGRAM_MANAGER not in roles:  # a reviewer: the questions they asked
            rule &= Q(Exists(InfoRequest.objects.filter(application=OuterRef("pk"), asked_by=user)))
        return rule
    if todo == Todo.OBJECTIONS:
        return Q(state=S.IN_NOTICE) & Q(_open_objection())
    if todo == Todo.APPROVE:
        # What this approver may approve now: the notice over, no objection open, and
        # neither their own review nor their own company (separation of duties).
        ready = Q(state=S.RECOMMENDED) | (
            Q(state=S.IN_NOTICE) & Q(notice_ends_at__lte=now) & ~Q(_open_objection())
        )
        mine = Q(Exists(Review.objects.filter(application=OuterRef("pk"), reviewer=user))) | Q(
            Exists(CompanyMember.objects.filter(company=OuterRef("company"), user=user))
        )
        return ready & ~mine
    if todo == Todo.NOTICE_WAITING:
        return Q(state=S.IN_NOTICE) & (Q(notice_ends_at__gt=now) | Q(_open_objection()))
    raise ValueError(todo)


def assigned_filter(user: User) -> Q:
    """Applications with a review of `user`'s still to do (`?assigned=me`): assigned,
    not submitted, no conflict declared, and the application being reviewed."""
    waiting = Review.objects.filter(
        application=OuterRef("pk"), reviewer=user, submitted_at__isnull=True
    ).exclude(conflict=True)
    return Q(state__in=REVIEW_STATES) & Q(Exists(waiting))


def open_objection_exists() -> Exists:
    return _open_objection()
