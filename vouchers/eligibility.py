"""The eligibility engine: a catalogue of rule types with parameters, chosen per program.

A program's `eligibility_rules` is a list like
`[{"type": "founded_within_years", "years": 5}, {"type": "max_headcount", "max": 300}]`.
Each rule gives `pass`, `fail` or `needs_review` (the data it needs is missing) with a
message in both languages; the outcomes are stored with the application at submission.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from django.db.models import Sum
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from vouchers.models import document_type_label

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

PASS, FAIL, NEEDS_REVIEW = "pass", "fail", "needs_review"


@dataclass(frozen=True)
class Outcome:
    rule: str
    outcome: str
    message_zh: str
    message_en: str


def _registered_in_city(app, params) -> Outcome:
    company = app.company
    if company.registered_city_id is None:
        return Outcome(
            "registered_in_city",
            FAIL,
            "企业注册地不在本市。",
            "The company is not registered in this city.",
        )
    if company.registered_city_id == app.city_id:
        return Outcome(
            "registered_in_city",
            PASS,
            "企业在本市注册。",
            "The company is registered in this city.",
        )
    return Outcome(
        "registered_in_city",
        FAIL,
        "企业注册地不在本市。",
        "The company is not registered in this city.",
    )


def _founded_within_years(app, params) -> Outcome:
    years = int(params.get("years", 5))
    founded = app.company.founded_on
    if founded is None:
        return Outcome(
            "founded_within_years",
            NEEDS_REVIEW,
            "未填写成立日期。",
            "The founding date is missing.",
        )
    today = timezone.localdate()
    try:
        limit = today.replace(year=today.year - years)
    except ValueError:  # 29 February
        limit = date(today.year - years, 2, 28)
    if founded >= limit:
        return Outcome(
            "founded_within_years", PASS, f"成立不满 {years} 年。", f"Founded within {years} years."
        )
    return Outcome(
        "founded_within_years",
        FAIL,
        f"成立已超过 {years} 年。",
        f"Founded more than {years} years ago.",
    )


def _max_headcount(app, params) -> Outcome:
    limit = int(params.get("max", 500))
    headcount = app.company.headcount
    if headcount is None:
        return Outcome(
            "max_headcount", NEEDS_REVIEW, "未填写员工人数。", "The headcount is missing."
        )
    if headcount <= limit:
        return Outcome(
            "max_headcount", PASS, f"员工不超过 {limit} 人。", f"At most {limit} employees."
        )
    return Outcome("max_headcount", FAIL, f"员工超过 {limit} 人。", f"More than {limit} employees.")


def _max_revenue(app, params) -> Outcome:
    limit = Decimal(str(params.get("max", "100000000")))
    revenue = app.company.revenue_last_year
    if revenue is None:
        return Outcome(
            "max_revenue", NEEDS_REVIEW, "未填写上年营业收入。", "Last year's revenue is missing."
        )
    if revenue <= limit:
        return Outcome(
            "max_revenue",
            PASS,
            f"上年营收不超过 ¥{limit:,.0f}。",
            f"Revenue at most ¥{limit:,.0f}.",
        )
    return Outcome(
        "max_revenue", FAIL, f"上年营收超过 ¥{limit:,.0f}。", f"Revenue above ¥{limit:,.0f}."
    )


def _required_documents(app, params) -> Outcome:
    required = set(app.program.required_documents or [])
    present = set(app.documents.values_list("doc_type", flat=True))
    missing = sorted(required - present)
    if not missing:
        return Outcome(
            "required_documents", PASS, "材料齐全。", "All required documents are attached."
        )
    with translation.override("zh-hans"):
        listed_zh = "、".join(document_type_label(d) for d in missing)
    with translation.override("en"):
        listed_en = ", ".join(document_type_label(d) for d in missing)
    return Outcome(
        "required_documents", FAIL, f"缺少材料：{listed_zh}。", f"Missing documents: {listed_en}."
    )


def _declarations_made(app, params) -> Outcome:
    if (
        app.declares_no_related_party
        and app.declares_no_other_subsidy
        and app.declares_true_information
    ):
        return Outcome("declarations_made", PASS, "已作出全部声明。", "All declarations are made.")
    return Outcome("declarations_made", FAIL, "声明不完整。", "Not every declaration is made.")


def _no_open_application_in_program(app, params) -> Outcome:
    from vouchers.models import Application, ApplicationState

    closed = [ApplicationState.REJECTED, ApplicationState.WITHDRAWN, ApplicationState.DRAFT]
    others = (
        Application.objects.filter(program=app.program, company=app.company)
        .exclude(pk=app.pk)
        .exclude(state__in=closed)
    )
    if others.exists():
        return Outcome(
            "no_open_application_in_program",
            FAIL,
            "本企业在该项目已有进行中的申请。",
            "The company already has an open application in this program.",
        )
    return Outcome(
        "no_open_application_in_program", PASS, "无进行中的其他申请。", "No other open application."
    )


def _within_company_yearly_cap(app, params) -> Outcome:
    from vouchers.models import Voucher

    cap = Decimal(str(params["cap"])) if "cap" in params else app.program.company_yearly_cap
    if cap is None:
        return Outcome(
            "within_company_yearly_cap",
            PASS,
            "项目未设年度上限。",
            "The program sets no yearly cap.",
        )
    year = timezone.localdate().year
    awarded = Voucher.objects.filter(
        city_id=app.city_id, company=app.company, issued_at__year=year
    ).aggregate(total=Sum("face_value"))["total"] or Decimal("0")
    requested = app.requested_amount or Decimal("0")
    if awarded + requested <= cap:
        return Outcome(
            "within_company_yearly_cap",
            PASS,
            f"本年已获 ¥{awarded:,.2f}，加本次申请未超过上限 ¥{cap:,.2f}。",
            f"¥{awarded:,.2f} awarded this year plus this request stay within the ¥{cap:,.2f} cap.",
        )
    return Outcome(
        "within_company_yearly_cap",
        FAIL,
        f"本年已获 ¥{awarded:,.2f}，加本次申请超过上限 ¥{cap:,.2f}。",
        f"¥{awarded:,.2f} awarded this year plus this request exceed the ¥{cap:,.2f} cap.",
    )


def _no_overdue_outcome_report(app, params) -> Outcome:
    """Outcome reports of this city's earlier vouchers that are past due and still with
    the company (vouchers.outcomes.overdue_filter) keep it out of the next round."""
    from vouchers.models import OutcomeReport
    from vouchers.outcomes import overdue_filter

    overdue = list(
        OutcomeReport.objects.filter(overdue_filter(timezone.localdate()))
        .filter(company=app.company, city_id=app.city_id)
        .order_by("due_on")
        .values_list("voucher__code", "due_on")[:3]
    )
    if not overdue:
        return Outcome(
            "no_overdue_outcome_report",
            PASS,
            "无逾期未交的成果报告。",
            "No outcome report is overdue.",
        )
    listed = ", ".join(f"{code} ({due:%Y-%m-%d})" for code, due in overdue)
    return Outcome(
        "no_overdue_outcome_report",
        FAIL,
        f"本企业有逾期未提交的成果报告：{listed}。",
        f"The company has an overdue outcome report: {listed}.",
    )


CATALOGUE: dict[str, Callable] = {
    "registered_in_city": _registered_in_city,
    "founded_within_years": _founded_within_years,
    "max_headcount": _max_headcount,
    "max_revenue": _max_revenue,
    "required_documents": _required_documents,
    "declarations_made": _declarations_made,
    "no_open_application_in_program": _no_open_application_in_program,
    "within_company_yearly_cap": _within_company_yearly_cap,
    "no_overdue_outcome_report": _no_overdue_outcome_report,
}


@dataclass(frozen=True)
class Parameter:
    """A rule parameter's kind and bounds (inclusive). The bounds keep every rule
    computable: `founded_within_years` of 3,000 would reach before year 1 and fail
    every submission to the program."""

    kind: type
    low: Decimal
    high: Decimal


# Parameters each rule accepts; all are optional (each rule has a default). Checked when
# a program is saved, so a submission never meets a bad one.
PARAMETERS: dict[str, dict[str, Parameter]] = {
    "founded_within_years": {"years": Parameter(int, Decimal(1), Decimal(100))},
    "max_headcount": {"max": Parameter(int, Decimal(1), Decimal(10_000_000))},
    "max_revenue": {"max": Parameter(Decimal, Decimal(0), Decimal(10) ** 13)},
    "within_company_yearly_cap": {"cap": Parameter(Decimal, Decimal(0), Decimal(10) ** 12)},
}


def _number_problem(value: object, parameter: Parameter) -> bool:
    if isinstance(value, bool):
        return True
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return True
    if not number.is_finite() or not parameter.low <= number <= parameter.high:
        return True
    return parameter.kind is int and number != number.to_integral_value()


def rules_problem(rules: object) -> str | None:
    """Why a program's rule list is malformed, or None (a translated message)."""
    if not isinstance(rules, list):
        return _("A list of rules is expected.")
    if len(rules) > len(CATALOGUE) * 2:
        return _("At most %(n)s rules.") % {"n": len(CATALOGUE) * 2}
    for rule in rules:
        if not isinstance(rule, dict) or rule.get("type") not in CATALOGUE:
            return _("Unknown rule %(rule)s; the catalogue has: %(known)s.") % {
                "rule": json.dumps(rule, ensure_ascii=False, default=str),
                "known": ", ".join(sorted(CATALOGUE)),
            }
        allowed = PARAMETERS.get(rule["type"], {})
        for name, value in rule.items():
            if name == "type":
                continue
            if name not in allowed:
                return _("The rule %(rule)s takes no parameter “%(name)s”.") % {
                    "rule": rule["type"],
                    "name": name,
                }
            parameter = allowed[name]
            if _number_problem(value, parameter):
                return _(
                    "The parameter “%(name)s” of %(rule)s must be a number from %(low)s "
                    "to %(high)s."
                ) % {
                    "rule": rule["type"],
                    "name": name,
                    "low": parameter.low,
                    "high": f"{parameter.high:,}",
                }
    return None


# The catalogue's rule types as program managers choose them (the editor's select).
RULE_LABELS: dict[str, StrOrPromise] = {
    "registered_in_city": gettext_lazy("Registered in the city"),
    "founded_within_years": gettext_lazy("Founded within a number of years"),
    "max_headcount": gettext_lazy("Headcount at most"),
    "max_revenue": gettext_lazy("Revenue last year at most"),
    "required_documents": gettext_lazy("Required documents attached"),
    "declarations_made": gettext_lazy("Declarations made"),
    "no_open_application_in_program": gettext_lazy("No other open application in the program"),
    "within_company_yearly_cap": gettext_lazy("Within the yearly cap per company"),
    "no_overdue_outcome_report": gettext_lazy("No overdue outcome report"),
}


def _yuan(value: object) -> str:
    return f"¥{Decimal(str(value)):,.2f}"


def rule_words(rule: dict, program=None) -> str:
    """A rule as applicants read it on the program's page, in the current language,
    with the defaults the engine applies when a parameter is left out."""
    kind = rule.get("type")
    if kind == "registered_in_city":
        return _("The company is registered in this city.")
    if kind == "founded_within_years":
        return _("The company was founded within the last %(years)s years.") % {
            "years": int(rule.get("years", 5))
        }
    if kind == "max_headcount":
        return _("The company has at most %(max)s employees.") % {"max": int(rule.get("max", 500))}
    if kind == "max_revenue":
        return _("The company's revenue last year was at most %(max)s.") % {
            "max": _yuan(rule.get("max", "100000000"))
        }
    if kind == "required_documents":
        return _("Every required document is attached.")
    if kind == "declarations_made":
        return _("All the application's declarations are made.")
    if kind == "no_open_application_in_program":
        return _("The company has no other open application in this program.")
    if kind == "within_company_yearly_cap":
        cap = rule["cap"] if "cap" in rule else getattr(program, "company_yearly_cap", None)
        if cap is None:
            return _("No yearly cap per company is set, so this rule always passes.")
        return _(
            "This city's awards to the company this year plus the request stay within %(cap)s."
        ) % {"cap": _yuan(cap)}
    if kind == "no_overdue_outcome_report":
        return _(
            "The company has no outcome report past its due date for an earlier voucher "
            "of this city."
        )
    return str(kind)


def evaluate(app) -> list[Outcome]:
    return [CATALOGUE[rule["type"]](app, rule) for rule in app.program.eligibility_rules or []]


def summary(outcomes: list[Outcome]) -> str:
    kinds = {o.outcome for o in outcomes}
    if FAIL in kinds:
        return FAIL
    if NEEDS_REVIEW in kinds:
        return NEEDS_REVIEW
    return PASS
