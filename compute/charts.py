"""Chart specifications built from the dashboards' selectors (compute/dashboards.py).

One shape serves the page's table view and the JSON endpoint the chart script reads
(static/js/charts.js), so the chart and its table show the same numbers:

    {"id", "kind": "bar" | "line" | "pie", "stacked", "unit": "yuan" | "count" | "days",
     "caption", "categories": [str], "series": [{"name", "data": [str]}]}

Numbers are strings (money exact to the fen); the script turns them into numbers only to
draw them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal

from django.utils.formats import date_format
from django.utils.translation import gettext as _

from compute.dashboards import Band, Budget, CityFigures, CompanySpend, IngestSeries, UsageSeries
from portal.templatetags.money import format_yuan


def spec(
    chart_id: str,
    *,
    kind: str,
    unit: str,
    caption: str,
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence]],
    stacked: bool = False,
) -> dict:
    return {
        "id": chart_id,
        "kind": kind,
        "stacked": stacked,
        "unit": unit,
        "caption": caption,
        "categories": list(categories),
        "series": [{"name": name, "data": [str(v) for v in data]} for name, data in series],
    }


def table_of(chart: dict) -> dict:
    """The chart as a table: a row per category, a column per series, formatted."""

    def cell(value: str) -> str:
        if chart["unit"] == "yuan":
            return format_yuan(value)
        if chart["unit"] == "count":
            return f"{int(Decimal(value)):,}"
        return value

    rows = [
        [category, *[cell(s["data"][k]) for s in chart["series"]]]
        for k, category in enumerate(chart["categories"])
    ]
    return {"head": [s["name"] for s in chart["series"]], "rows": rows}


def period_label(day: date, period: str) -> str:
    if period == "month":
        return day.strftime("%Y-%m")
    return day.isoformat() if period == "day" else _("week of %(day)s") % {"day": day.isoformat()}


def budget_chart(budget: Budget) -> dict:
    return spec(
        "budget",
        kind="bar",
        unit="yuan",
        caption=_("Budget: committed (vouchers issued), spent (usage charged), returned and left"),
        categories=[_("Budget"), _("Committed"), _("Spent"), _("Returned"), _("Left")],
        series=[
            (
                _("Amount"),
                [budget.budget, budget.committed, budget.spent, budget.returned, budget.left],
            )
        ],
    )


def funnel_chart(funnel: list[tuple[str, str, int]]) -> dict:
    return spec(
        "funnel",
        kind="bar",
        unit="count",
        caption=_("Applications by state"),
        categories=[label for _state, label, _n in funnel],
        series=[(_("Applications"), [n for _s, _l, n in funnel])],
    )


def band_label(band: Band) -> str:
    if band.high is None:
        return _("%(low)s and more") % {"low": format_yuan(band.low)}
    return _("%(low)s to under %(high)s") % {
        "low": format_yuan(band.low),
        "high": format_yuan(band.high),
    }


def bands_chart(bands: list[Band]) -> dict:
    return spec(
        "bands",
        kind="bar",
        unit="count",
        caption=_("Vouchers issued by size of award"),
        categories=[band_label(b) for b in bands],
        series=[(_("Vouchers"), [b.vouchers for b in bands])],
    )


def usage_charts(usage: UsageSeries, period: str) -> list[dict]:
    categories = [period_label(p, period) for p in usage.periods]
    return [
        spec(
            "usage-dc",
            kind="bar",
            stacked=True,
            unit="yuan",
            caption=_("Usage covered by vouchers, by data center"),
            categories=categories,
            series=[(dc.name, usage.by_data_center[dc.pk]) for dc in usage.data_centers],
        ),
        spec(
            "usage-chips",
            kind="bar",
            stacked=True,
            unit="yuan",
            caption=_("Usage covered by vouchers: domestic and other chips"),
            categories=categories,
            series=[(_("Domestic chips"), usage.domestic), (_("Other chips"), usage.other)],
        ),
    ]


def top_companies_chart(top: list[CompanySpend]) -> dict:
    return spec(
        "top-companies",
        kind="bar",
        unit="yuan",
        caption=_("Companies whose vouchers covered the most usage"),
        categories=[t.company.legal_name for t in top],
        series=[(_("Covered"), [t.covered for t in top])],
    )


def ingest_chart(ingest: IngestSeries, period: str, outcome_labels: dict[str, str]) -> dict:
    return spec(
        "ingest",
        kind="bar",
        stacked=True,
        unit="count",
        caption=_("Records received: accepted, duplicates and rejections by code"),
        categories=[period_label(p, period) for p in ingest.periods],
        series=[(outcome_labels.get(o, o), ingest.counts[o]) for o in ingest.outcomes],
    )


def burn_chart(code: str, days: list[date], remaining: list[Decimal]) -> dict:
    return spec(
        f"burn-{code}",
        kind="line",
        unit="yuan",
        caption=_("Voucher %(code)s: face value less usage, by day of use") % {"code": code},
        categories=[date_format(d, "Y-m-d") for d in days],
        series=[(_("Remaining"), remaining)],
    )


def cities_chart(cities: list[CityFigures]) -> dict:
    return spec(
        "cities",
        kind="bar",
        unit="yuan",
        caption=_("Cities side by side: budget, committed and spent"),
        categories=[c.city.name for c in cities],
        series=[
            (_("Budget"), [c.budget for c in cities]),
            (_("Committed"), [c.committed for c in cities]),
            (_("Spent"), [c.spent for c in cities]),
        ],
    )
