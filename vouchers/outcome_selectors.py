"""Reads of outcome reports (the selectors of vouchers/services/outcomes.py): each takes
the reader's scope, the user (their companies' reports) or the city (its staff's), so
another company's or city's report is a 404 by construction."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.db.models import Count, Max, Q, QuerySet, Sum
from django.shortcuts import get_object_or_404
from django.utils import timezone

from portal.models import City, User
from portal.selectors import one_scope
from vouchers.models import (
    OUTCOME_WAITING_STATES,
    OutcomeDocument,
    OutcomeReport,
    OutcomeState,
    Program,
)
from vouchers.outcomes import due_soon_filter, overdue_filter

# The queue's filters (`?show=`): what waits for the program manager, what is overdue.
SHOW_WAITING, SHOW_OVERDUE = "waiting", "overdue"


def outcome_report_list(
    *,
    user: User | None = None,
    city: City | None = None,
    state: str = "",
    show: str = "",
    program: Program | None = None,
    today: date | None = None,
) -> QuerySet[OutcomeReport]:
    """The reports of the user's companies, or (staff) of the city, earliest due first;
    `state` keeps one state's, `show` the waiting (submitted or resubmitted) or the
    overdue ones."""
    if one_scope(user=user, city=city) == "user":
        if user is None or not user.is_authenticated:
            return OutcomeReport.objects.none()
        reports = OutcomeReport.objects.filter(company__members=user)
    else:
        reports = OutcomeReport.objects.filter(city=city)
    if state in OutcomeState.values:
        reports = reports.filter(state=state)
    if show == SHOW_WAITING:
        reports = reports.filter(state__in=OUTCOME_WAITING_STATES)
    elif show == SHOW_OVERDUE:
        reports = reports.filter(overdue_filter(today or timezone.localdate()))
    if program is not None:
        reports = reports.filter(program=program)
    return reports.select_related("city", "program", "company", "voucher").order_by("due_on", "pk")


def outcome_report_todo_list(*, user: User, today: date | None = None) -> QuerySet[OutcomeReport]:
    """What the company home asks the user to do: their companies' reports due within
    two weeks, overdue, or returned for changes."""
    today = today or timezone.localdate()
    return outcome_report_list(user=user).filter(
        due_soon_filter(today) | overdue_filter(today) | Q(state=OutcomeState.RETURNED)
    )


def outcome_report_get(
    *, pk: int, user: User | None = None, city: City | None = None
) -> OutcomeReport:
    return get_object_or_404(outcome_report_list(user=user, city=city), pk=pk)


def outcome_document_list(*, report: OutcomeReport) -> QuerySet[OutcomeDocument]:
    return report.documents.order_by("doc_type", "pk")


def outcome_document_get(*, report: OutcomeReport, pk: int) -> OutcomeDocument:
    return get_object_or_404(OutcomeDocument, report=report, pk=pk)


@dataclass(frozen=True)
class OutcomeTotals:
    """A program's outcome reports: how many in each state, and what the accepted ones
    report having built (sums, and the largest model)."""

    by_state: dict[str, int] = field(default_factory=dict)
    overdue: int = 0
    accepted: int = 0
    models_trained: int = 0
    largest_model_parameters: Decimal | None = None
    products_launched: int = 0
    papers_published: int = 0
    hires: int = 0

    @property
    def total(self) -> int:
        return sum(self.by_state.values())

    @property
    def state_rows(self) -> list[tuple[str, str, int]]:
        """(state, its label, how many), in the workflow's order."""
        return [(s.value, str(s.label), self.by_state.get(s.value, 0)) for s in OutcomeState]


def outcome_totals_get(*, program: Program, today: date | None = None) -> OutcomeTotals:
    """One query whatever the number of reports: the counts by state and overdue, and
    the sums over accepted reports, as conditional aggregates."""
    accepted = Q(state=OutcomeState.ACCEPTED)
    row = OutcomeReport.objects.filter(program=program).aggregate(
        **{f"n_{state}": Count("pk", filter=Q(state=state)) for state in OutcomeState.values},
        overdue=Count("pk", filter=overdue_filter(today or timezone.localdate())),
        models=Sum("models_trained", filter=accepted),
        largest=Max("largest_model_parameters", filter=accepted),
        products=Sum("products_launched", filter=accepted),
        papers=Sum("papers_published", filter=accepted),
        hires=Sum("hires", filter=accepted),
    )
    return OutcomeTotals(
        by_state={state: row[f"n_{state}"] for state in OutcomeState.values},
        overdue=row["overdue"],
        accepted=row[f"n_{OutcomeState.ACCEPTED.value}"],
        models_trained=row["models"] or 0,
        largest_model_parameters=row["largest"],
        products_launched=row["products"] or 0,
        papers_published=row["papers"] or 0,
        hires=row["hires"] or 0,
    )
