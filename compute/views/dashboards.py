"""The dashboards: a program's (its city's program managers, approvers and auditors), a
company's (/my/dashboard/), a data center's (/dc/<slug>/dashboard/) and the platform's
(superusers). Each page has a JSON endpoint scoped exactly like it, which the chart
script (static/js/charts.js) reads; the page shows the same charts as tables.

Scoping is the pages' usual: the program through the city's selector (another city's
program is a 404), the voucher through the user's companies, the data center through its
operators; the platform overview is a 404 to everyone but superusers.
"""

from __future__ import annotations

from decimal import Decimal

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from compute import charts, dashboards
from compute.ingest.plan import Outcome
from compute.selectors import data_center_get
from portal.http import SignedInRequest
from portal.models import Role
from portal.tenancy import staff_required
from vouchers import selectors as voucher_selectors
from vouchers.outcome_selectors import outcome_totals_get

PROGRAM_ROLES = (Role.PROGRAM_MANAGER, Role.APPROVER, Role.AUDITOR)


def _period(request: HttpRequest) -> str:
    return dashboards.period_or_default(request.GET.get("period"))


def _with_tables(chart_list: list[dict]) -> list[dict]:
    return [{**c, "table": charts.table_of(c)} for c in chart_list]


# --- program --------------------------------------------------------------------------------


def _program_charts(program, period: str) -> tuple[dict, list[dict]]:
    # The bands cover every face value: their totals are the committed sum.
    bands = dashboards.award_band_list(program=program)
    committed = sum((band.total for band in bands), Decimal(0))
    budget = dashboards.program_budget_get(program=program, committed=committed)
    counts, changes = voucher_selectors.application_state_tally(program=program)
    funnel = dashboards.application_funnel_list(program=program, counts=counts)
    usage = dashboards.program_usage_series(program=program, period=period)
    top = dashboards.top_company_list(program=program)
    figures = {
        "budget": budget,
        "funnel": funnel,
        "bands": bands,
        "top": top,
        "decision": dashboards.decision_time_get(program=program, changes=changes),
        # What the vouchers achieved: outcome reports by state, and the accepted ones'
        # sums (vouchers.outcome_selectors).
        "outcomes": outcome_totals_get(program=program),
    }
    chart_list = [
        charts.budget_chart(budget),
        charts.funnel_chart(funnel),
        charts.bands_chart(bands),
        *charts.usage_charts(usage, period),
        charts.top_companies_chart(top),
    ]
    return figures, chart_list


@staff_required(*PROGRAM_ROLES)
def program_dashboards(request: SignedInRequest, city_slug: str) -> HttpResponse:
    return render(
        request,
        "compute/dashboard_programs.html",
        {"city": request.city, "programs": dashboards.program_budget_list(city=request.city)},
    )


@staff_required(*PROGRAM_ROLES)
def program_dashboard(request: SignedInRequest, city_slug: str, slug: str) -> HttpResponse:
    program = voucher_selectors.program_get(city=request.city, slug=slug)
    period = _period(request)
    figures, chart_list = _program_charts(program, period)
    return render(
        request,
        "compute/dashboard_program.html",
        {
            "city": request.city,
            "program": program,
            "period": period,
            "periods": dashboards.PERIODS,
            "charts": _with_tables(chart_list),
            "data_url": reverse("compute:program_dashboard_json", args=[city_slug, slug]),
            **figures,
        },
    )


@staff_required(*PROGRAM_ROLES)
def program_dashboard_json(request: SignedInRequest, city_slug: str, slug: str) -> JsonResponse:
    program = voucher_selectors.program_get(city=request.city, slug=slug)
    figures, chart_list = _program_charts(program, _period(request))
    budget, decision, outcomes = figures["budget"], figures["decision"], figures["outcomes"]
    return JsonResponse(
        {
            "charts": chart_list,
            "budget": {k: str(v) for k, v in vars(budget).items()},
            "decision_days": {
                "decided": decision.decided,
                "median": None if decision.median_days is None else str(decision.median_days),
                "p90": None if decision.p90_days is None else str(decision.p90_days),
            },
            "outcomes": {
                "by_state": outcomes.by_state,
                "overdue": outcomes.overdue,
                "accepted": outcomes.accepted,
                "models_trained": outcomes.models_trained,
                "largest_model_parameters": None
                if outcomes.largest_model_parameters is None
                else str(outcomes.largest_model_parameters),
                "products_launched": outcomes.products_launched,
                "papers_published": outcomes.papers_published,
                "hires": outcomes.hires,
            },
        },
        json_dumps_params={"ensure_ascii": False},
    )


# --- company --------------------------------------------------------------------------------


@login_required
def my_dashboard(request: SignedInRequest) -> HttpResponse:
    vouchers = list(voucher_selectors.voucher_list(user=request.user).order_by("code"))
    burns = dashboards.voucher_burn_list(vouchers=vouchers)
    sections = []
    for burn in burns:
        chart = charts.burn_chart(burn.voucher.code, burn.days, burn.remaining)
        sections.append(
            {
                "burn": burn,
                "chart": {**chart, "table": charts.table_of(chart)},
                "data_url": reverse("compute:my_voucher_usage_json", args=[burn.voucher.code]),
            }
        )
    return render(
        request,
        "compute/dashboard_company.html",
        {"burns": burns, "sections": sections, "today": timezone.localdate()},
    )


@login_required
def my_voucher_usage_json(request: SignedInRequest, code: str) -> JsonResponse:
    voucher = voucher_selectors.voucher_get(user=request.user, code=code)
    (burn,) = dashboards.voucher_burn_list(vouchers=[voucher])
    return JsonResponse(
        {
            "charts": [charts.burn_chart(voucher.code, burn.days, burn.remaining)],
            "balance": str(voucher.balance),
            "spent": str(burn.spent),
            "daily_rate": str(burn.daily_rate),
            "runs_out_on": burn.runs_out_on.isoformat() if burn.runs_out_on else None,
            "usage": [
                {
                    "day": day.isoformat(),
                    "data_center": dc.slug if dc else None,
                    "resource": resource,
                    "records": records,
                    "quantity": str(quantity),
                    "covered": str(covered),
                }
                for day, dc, resource, records, quantity, covered in burn.usage_rows
            ],
            "months": [
                {
                    "month": month.strftime("%Y-%m"),
                    "records": n,
                    "amount": str(amount),
                    "covered": str(covered),
                }
                for month, n, amount, covered in burn.months
            ],
        },
        json_dumps_params={"ensure_ascii": False},
    )


# --- data center ----------------------------------------------------------------------------


def _outcome_labels() -> dict[str, str]:
    """Series names: accepted, duplicate, and "rejected: <code>" for each code."""
    labels = {Outcome.ACCEPTED: _("Accepted"), Outcome.DUPLICATE: _("Duplicate")}
    for code in Outcome:
        if code not in labels:
            labels[code] = _("Rejected: %(code)s") % {"code": code.value}
    return {str(k): v for k, v in labels.items()}


def _dc_charts(dc, period: str) -> list[dict]:
    ingest = dashboards.ingest_series(data_center=dc, period=period)
    return [charts.ingest_chart(ingest, period, _outcome_labels())]


@login_required
def console_dashboard(request: SignedInRequest, slug: str) -> HttpResponse:
    dc = data_center_get(operator=request.user, slug=slug)
    period = _period(request)
    return render(
        request,
        "compute/dashboard_dc.html",
        {
            "dc": dc,
            "period": period,
            "periods": dashboards.PERIODS,
            "charts": _with_tables(_dc_charts(dc, period)),
            "data_url": reverse("compute:console_dashboard_json", args=[slug]),
            "cities": dashboards.covered_by_city_list(data_center=dc),
            "settlements": dashboards.settlement_status_list(data_center=dc),
            "runs": dashboards.feed_run_list(data_center=dc),
        },
    )


@login_required
def console_dashboard_json(request: SignedInRequest, slug: str) -> JsonResponse:
    dc = data_center_get(operator=request.user, slug=slug)
    return JsonResponse(
        {
            "charts": _dc_charts(dc, _period(request)),
            "cities": [
                {"city": city.slug, "records": n, "covered": str(covered)}
                for city, n, covered in dashboards.covered_by_city_list(data_center=dc)
            ],
            "settlements": [
                {"status": status, "statements": n, "covered": str(total)}
                for status, _label, n, total in dashboards.settlement_status_list(data_center=dc)
            ],
            "feed": {"healthy": dc.feed_healthy, "error": dc.feed_error},
        },
        json_dumps_params={"ensure_ascii": False},
    )


# --- platform -------------------------------------------------------------------------------


def _superuser(request: HttpRequest) -> None:
    if not (request.user.is_authenticated and request.user.is_superuser):
        raise Http404


def platform_overview(request: HttpRequest) -> HttpResponse:
    _superuser(request)
    cities = dashboards.city_figure_list()
    return render(
        request,
        "compute/dashboard_platform.html",
        {
            "cities": cities,
            "charts": _with_tables([charts.cities_chart(cities)]),
            "data_url": reverse("compute:platform_overview_json"),
        },
    )


def platform_overview_json(request: HttpRequest) -> JsonResponse:
    _superuser(request)
    cities = dashboards.city_figure_list()
    return JsonResponse(
        {
            "charts": [charts.cities_chart(cities)],
            "cities": [
                {
                    "city": c.city.slug,
                    "budget": str(c.budget),
                    "committed": str(c.committed),
                    "spent": str(c.spent),
                    "applications": c.applications,
                    "vouchers": c.vouchers,
                    "data_centers": c.data_centers,
                }
                for c in cities
            ],
        },
        json_dumps_params={"ensure_ascii": False},
    )
