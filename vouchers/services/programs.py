"""Programs: a city's terms held as data, checked before they are saved."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from portal.audit import SYSTEM, Actor, audit_record
from portal.errors import DomainError
from portal.models import City, Role
from portal.tenancy import has_role
from vouchers import eligibility
from vouchers.models import Program
from vouchers.services._steps import invalid

PROGRAM_FIELDS = [
    "slug",
    "name_zh",
    "name_en",
    "description_zh",
    "description_en",
    "status",
    "opens_at",
    "closes_at",
    "budget",
    "award_min",
    "award_max",
    "rate_domestic",
    "rate_other",
    "company_yearly_cap",
    "validity_months",
    "grace_days",
    "reviews_required",
    "reviews_blind",
    "acceptance_days",
    "rubric",
    "notice_days",
    "publish_results",
    "required_documents",
    "eligibility_rules",
    "hard_fail_rejects",
    "outcome_reports_required",
    "outcome_final_days",
    "outcome_midterm_months",
]


# Bounds of a program's settings: what a real rubric or document list needs, no more.
RUBRIC_MAX_CRITERIA = 30
RUBRIC_MAX_WEIGHT = 100
RUBRIC_MAX_POINTS = 1000
MAX_REQUIRED_DOCUMENTS = 30


def rubric_problem(rubric: object) -> str | None:
    if not isinstance(rubric, list):
        return _("The rubric is a list of criteria.")
    if len(rubric) > RUBRIC_MAX_CRITERIA:
        return _("At most %(n)s criteria.") % {"n": RUBRIC_MAX_CRITERIA}
    for criterion in rubric:
        if (
            not isinstance(criterion, dict)
            or not isinstance(criterion.get("name", ""), str)
            or not criterion.get("name", "").strip()
            or len(criterion["name"]) > 100
            or not isinstance(criterion.get("name_en", ""), str)
            or len(criterion.get("name_en", "")) > 100
            or isinstance(criterion.get("weight"), bool)
            or not isinstance(criterion.get("weight"), int | float)
            or isinstance(criterion.get("max"), bool)
            or not isinstance(criterion.get("max"), int)
            or not 0 < criterion["weight"] <= RUBRIC_MAX_WEIGHT
            or not 0 < criterion["max"] <= RUBRIC_MAX_POINTS
        ):
            return _(
                "Each criterion needs a name (at most 100 characters), a weight above 0 and "
                "at most %(weight)s, and a maximum of 1 to %(points)s points, "
                'e.g. {"name": "Team", "weight": 1, "max": 10}.'
            ) % {"weight": RUBRIC_MAX_WEIGHT, "points": RUBRIC_MAX_POINTS}
    names = [str(c["name"]).strip() for c in rubric]
    if len(set(names)) != len(names):
        # The scoring form has one field per criterion name.
        return _("Each criterion needs a name of its own.")
    return None


# What a program's settings may be: real programs need no more, and each bound keeps a
# value inside its column (a smallint holds 32,767) and every date inside the calendar.
PROGRAM_NUMBER_BOUNDS = {
    "validity_months": (1, 120),
    "grace_days": (0, 365),
    "reviews_required": (0, 20),
    "notice_days": (0, 90),
    "acceptance_days": (0, 90),
    "outcome_final_days": (0, 365),
    "outcome_midterm_months": (1, 119),
}
EARLIEST_DATE = date(2000, 1, 1)
LATEST_DATE = date(2100, 12, 31)


def program_validate(values: dict[str, Any]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    budget, low, high = values.get("budget"), values.get("award_min"), values.get("award_max")
    if budget is not None and low is not None and high is not None:
        if low > high:
            add("award_min", _("The minimum award cannot exceed the maximum."))
        if high > budget:
            add("award_max", _("The maximum award cannot exceed the budget."))
    for field in ("rate_domestic", "rate_other"):
        rate = values.get(field)
        if rate is not None and not Decimal("0") <= rate <= Decimal("1"):
            add(field, _("A rate is between 0 and 1, e.g. 0.30 for 30%."))
    opens, closes = values.get("opens_at"), values.get("closes_at")
    for field, moment in (("opens_at", opens), ("closes_at", closes)):
        # Year 1 in Shanghai is before year 1 in UTC: PostgreSQL would store it BC and
        # every later read of the program would fail.
        if moment is not None and not EARLIEST_DATE.year <= moment.year <= LATEST_DATE.year:
            add(
                field,
                _("Choose a date between %(low)s and %(high)s.")
                % {"low": EARLIEST_DATE.year, "high": LATEST_DATE.year},
            )
    if opens and closes and closes <= opens:
        add("closes_at", _("The program must close after it opens."))
    for field, (low, high) in PROGRAM_NUMBER_BOUNDS.items():
        number = values.get(field)
        if number is not None and not low <= number <= high:
            add(field, _("A number from %(low)s to %(high)s.") % {"low": low, "high": high})
    midterm, validity = values.get("outcome_midterm_months"), values.get("validity_months")
    if midterm is not None and validity is not None and midterm >= validity:
        # A mid-term report after the voucher's end would be a second final one.
        add(
            "outcome_midterm_months",
            _("The mid-term report is due before the voucher ends (%(n)s months).")
            % {"n": validity},
        )
    rubric = values.get("rubric") or []
    # Checked whenever there is one (a malformed rubric broke the scoring form later),
    # and required when reviews are.
    problem = rubric_problem(rubric) if rubric else None
    if problem or ((values.get("reviews_required") or 0) > 0 and not rubric):
        add("rubric", problem or _("Programs with reviews need a scoring rubric."))
    problem = eligibility.rules_problem(values.get("eligibility_rules") or [])
    if problem:
        add("eligibility_rules", problem)
    documents = values.get("required_documents") or []
    if not isinstance(documents, list) or not all(
        isinstance(d, str) and d.strip() and len(d) <= 60 for d in documents
    ):
        add(
            "required_documents",
            _("A list of document types is expected, each at most 60 characters."),
        )
    elif len(documents) > MAX_REQUIRED_DOCUMENTS:
        add(
            "required_documents", _("At most %(n)s document types.") % {"n": MAX_REQUIRED_DOCUMENTS}
        )
    return errors


def program_save(
    *, city: City, actor: Actor, values: dict[str, Any], program: Program | None = None
) -> Program:
    """Create or change one of the city's programs (program managers only)."""
    if actor is not SYSTEM and not has_role(actor, city, Role.PROGRAM_MANAGER):
        raise DomainError(_("Only the city's program managers edit programs."), code="forbidden")
    errors = program_validate(values)
    if errors:
        raise DomainError(_("Please correct the fields below."), fields=errors)
    with transaction.atomic():
        if program is None:
            program = Program(city=city)
        else:
            program = Program.objects.select_for_update().get(pk=program.pk, city=city)
            if values.get("budget") is not None and values["budget"] < (
                program.allocated + program.reserved
            ):
                raise invalid("budget", _("The budget cannot be below what is already allocated."))
        for field in PROGRAM_FIELDS:
            if field in values:
                setattr(program, field, values[field])
        try:
            with transaction.atomic():
                program.save()
        except IntegrityError as error:
            raise invalid(
                "slug", _("Another program of this city uses this short name.")
            ) from error
        audit_record(
            action="program.save",
            city=city,
            actor=actor,
            target=program,
            data={k: str(v) for k, v in values.items() if k in PROGRAM_FIELDS},
        )
    return program
