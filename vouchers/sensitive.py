"""The vouchers app's sensitive actions, which ask for a recent authentication
(portal/reauth.py): deciding on an application (approve, reject, and breaking a tie,
which decides between them), accepting or returning an outcome report, and changing a
program's money: its budget, award bounds, rates or yearly cap (creating a program sets
them all)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from portal.reauth import post_action_in, sensitive_register
from vouchers.forms import ProgramForm
from vouchers.models import Program

# The fields of a program that say how much public money goes where.
PROGRAM_MONEY_FIELDS = frozenset(
    ["budget", "award_min", "award_max", "rate_domestic", "rate_other", "company_yearly_cap"]
)


def program_money_changed(request: HttpRequest, kwargs: dict[str, Any]) -> bool:
    """A POST of the program form that creates a program or changes a money field. A
    program the city does not have is not asked about (the view answers 404)."""
    if request.method != "POST":
        return False
    city = getattr(request, "city", None)
    slug = kwargs.get("slug")
    if slug is None:
        return True
    program = Program.objects.filter(city=city, slug=slug).first() if city else None
    if program is None:
        return False
    form = ProgramForm(request.POST, instance=program)
    return bool(PROGRAM_MONEY_FIELDS.intersection(form.changed_data))


def sensitive_actions_register() -> None:
    """From `VouchersConfig.ready()`."""
    sensitive_register("vouchers:staff_action", post_action_in("approve", "reject", "break_tie"))
    # Accepting or returning an outcome report (验收) decides whether the company may
    # take part in the next round (eligibility rule no_overdue_outcome_report).
    sensitive_register("vouchers:staff_outcome_action", post_action_in("accept", "return"))
    sensitive_register("vouchers:staff_program_new", program_money_changed)
    sensitive_register("vouchers:staff_program_edit", program_money_changed)
