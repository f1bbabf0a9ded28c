"""The outcome-report workflow (成果报告, 验收): one transition table, read by the services
(which enforce it, vouchers/services/outcomes.py) and the pages (which offer only what it
allows); and when each voucher's reports are due.

    draft → submitted → accepted
                      → returned → resubmitted → accepted
                                               → returned → resubmitted …

The company's members write and submit (draft, returned); the city's program managers
accept or return with comments (submitted, resubmitted). Accepted is final.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q

from portal.models import User
from portal.tenancy import roles_in_city
from vouchers.models import (
    OUTCOME_OPEN_STATES,
    CompanyMember,
    OutcomeReport,
    OutcomeStage,
    Voucher,
    VoucherStatus,
)
from vouchers.models import OutcomeState as S

MEMBER = "member"
MANAGER = "program_manager"


@dataclass(frozen=True)
class Transition:
    sources: frozenset[str]
    target: str
    who: str


TRANSITIONS: dict[str, Transition] = {
    "submit": Transition(frozenset({S.DRAFT}), S.SUBMITTED, MEMBER),
    "resubmit": Transition(frozenset({S.RETURNED}), S.RESUBMITTED, MEMBER),
    "accept": Transition(frozenset({S.SUBMITTED, S.RESUBMITTED}), S.ACCEPTED, MANAGER),
    "return": Transition(frozenset({S.SUBMITTED, S.RESUBMITTED}), S.RETURNED, MANAGER),
}

# The company may change the report's figures, text and documents in these states.
EDITABLE = frozenset({S.DRAFT, S.RETURNED})


def allowed(action: str, state: str) -> bool:
    transition = TRANSITIONS.get(action)
    return transition is not None and state in transition.sources


def parties(report: OutcomeReport, user: User) -> frozenset[str]:
    """Who `user` is to the report: a member of its company, a program manager of its
    city, both, or neither (then the report is "not found" to them)."""
    who = set()
    if getattr(user, "is_authenticated", False):
        if CompanyMember.objects.filter(company_id=report.company_id, user=user).exists():
            who.add(MEMBER)
        if MANAGER in roles_in_city(user, report.city):
            who.add(MANAGER)
    return frozenset(who)


def actions(report: OutcomeReport, user: User) -> list[str]:
    """The steps `user` may take on the report now (what the page offers)."""
    who = parties(report, user)
    if MEMBER in who and MANAGER in who:
        # A program manager of the company's own report takes no manager's step.
        who = frozenset({MEMBER})
    return [name for name, t in TRANSITIONS.items() if t.who in who and report.state in t.sources]


# --- due dates ---------------------------------------------------------------------------------


def _add_months(day: date, months: int) -> date:
    from vouchers.ledger import _add_months as add

    return add(day, months)


def due_dates(voucher: Voucher) -> dict[str, date]:
    """The stages the voucher's program asks for and when each is due: the final report
    `outcome_final_days` after the voucher's last day, a mid-term one (if set)
    `outcome_midterm_months` after its first (never after its last day)."""
    program = voucher.program
    if not program.outcome_reports_required:
        return {}
    dates = {
        OutcomeStage.FINAL.value: voucher.valid_until + timedelta(days=program.outcome_final_days)
    }
    months = program.outcome_midterm_months
    if months:
        midterm = min(_add_months(voucher.valid_from, months), voucher.valid_until)
        dates[OutcomeStage.MIDTERM.value] = midterm
    return dates


def outcome_reports_schedule(*, voucher: Voucher) -> list[OutcomeReport]:
    """The voucher's reports, created as drafts for each stage its program asks for and
    not yet there (idempotent: one per voucher and stage, a unique constraint). Called
    when the voucher is issued and by the nightly job."""
    created = []
    for stage, due_on in due_dates(voucher).items():
        if OutcomeReport.objects.filter(voucher=voucher, stage=stage).exists():
            continue
        try:
            with transaction.atomic():
                created.append(
                    OutcomeReport.objects.create(
                        city_id=voucher.city_id,
                        program_id=voucher.program_id,
                        company_id=voucher.company_id,
                        voucher=voucher,
                        stage=stage,
                        due_on=due_on,
                    )
                )
        except IntegrityError:  # made meanwhile by another run
            continue
    return created


# How long before its due date a report shows on the company's home and is reminded of.
DUE_SOON_DAYS = 14


def overdue_filter(today: date) -> Q:
    """Reports past their due date and still with the company (never submitted, or
    returned and not yet resubmitted). A revoked voucher owes none. The one rule behind
    the eligibility rule `no_overdue_outcome_report`, the reminders and the work lists."""
    return Q(state__in=OUTCOME_OPEN_STATES, due_on__lt=today) & ~Q(
        voucher__status=VoucherStatus.REVOKED
    )


def due_soon_filter(today: date) -> Q:
    """Reports with the company and due within `DUE_SOON_DAYS` (today included)."""
    return Q(
        state__in=OUTCOME_OPEN_STATES,
        due_on__gte=today,
        due_on__lte=today + timedelta(days=DUE_SOON_DAYS),
    ) & ~Q(voucher__status=VoucherStatus.REVOKED)
