"""Exports of the compute app's lists (issue #12 item 7): usage records and settlement
statements, as CSV or XLSX (`portal.exports` streams them and audits each as
`export.<kind>`).

The city's program managers and auditors export the city's (usage charged to its
vouchers, its statements as the statements page filters them); a data center's
operators export their data center's (statements once issued, as in the console); a
company's members export the usage of their own vouchers. Anyone else gets a 404.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import Http404, HttpResponseBase
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from compute import selectors
from compute.models import DataCenter, RecordStatus, SettlementStatus, UsageRecord
from compute.views.common import settlement_filters
from portal.citytime import city_zone
from portal.exports import (
    ExportFormat,
    Neutralised,
    choice_label,
    export_filters,
    export_response,
    flag,
    keyset_rows,
    labelled,
    local_time,
)
from portal.http import SignedInRequest
from portal.models import Role
from portal.tenancy import staff_required
from vouchers import selectors as voucher_selectors

CITY_EXPORTERS = (Role.PROGRAM_MANAGER, Role.AUDITOR)


def _format(fmt: str) -> str:
    if fmt not in {f.value for f in ExportFormat}:
        raise Http404
    return fmt


def _zh() -> bool:
    return (get_language() or "").startswith("zh")


def _operated(request: SignedInRequest, slug: str) -> DataCenter:
    return selectors.data_center_get(operator=request.user, slug=slug)


# --- usage records --------------------------------------------------------------------------


def usage_export_rows(records: QuerySet[UsageRecord], zone: str) -> QuerySet:
    """Each usage record with its voucher and data center, by id, as cells computed by
    PostgreSQL (text neutralised, the status's label, times as text in `zone`): the
    CSV is PostgreSQL's `COPY` of it, the XLSX reads it a chunk at a time."""
    name = "data_center__name_zh" if _zh() else "data_center__name_en"
    return (
        records.annotate(
            x_record=Neutralised("record_id"),
            x_data_center=Neutralised(name),
            x_voucher=Neutralised("voucher__code"),
            x_resource=Neutralised("resource"),
            x_domestic=flag("domestic"),
            x_started=local_time("started_at", zone),
            x_ended=local_time("ended_at", zone),
            x_status=choice_label("status", RecordStatus.choices),
            x_received=local_time("created_at", zone),
        )
        .order_by("id")
        .values_list(*USAGE_COLUMNS)
    )


USAGE_COLUMNS = [
    "id",
    "x_record",
    "x_data_center",
    "x_voucher",
    "x_resource",
    "x_domestic",
    "x_started",
    "x_ended",
    "quantity",
    "amount",
    "covered_amount",
    "x_status",
    "x_received",
]


def _usage_headers() -> list[str]:
    return [
        "#",
        _("Record"),
        _("Data center"),
        _("Voucher"),
        _("Accelerator"),
        _("Domestic chip"),
        _("Started"),
        _("Ended"),
        _("Hours"),
        _("List price"),
        _("Covered"),
        _("Status"),
        _("Received"),
    ]


def _usage_response(request, records, *, fmt, filename, **scope) -> HttpResponseBase:
    city = scope.get("city")
    zone = city_zone(city).key if city is not None else settings.TIME_ZONE
    rows = usage_export_rows(records, zone)
    return export_response(
        request,
        kind="usage",
        fmt=_format(fmt),
        headers=_usage_headers(),
        rows=keyset_rows(rows, USAGE_COLUMNS),
        sql_rows=rows,
        filename=filename,
        **scope,
    )


@staff_required(*CITY_EXPORTERS)
def usage_export(request: SignedInRequest, city_slug: str, fmt: str) -> HttpResponseBase:
    records = UsageRecord.objects.filter(voucher__city=request.city)
    filters = {}
    if slug := request.GET.get("data_center", "")[:40]:
        records = records.filter(data_center__slug=slug)
        filters["data_center"] = slug
    return _usage_response(
        request,
        records,
        fmt=fmt,
        filename=f"usage-{request.city.slug}",
        filters=filters,
        city=request.city,
    )


@login_required
def console_usage_export(request: SignedInRequest, slug: str, fmt: str) -> HttpResponseBase:
    dc = _operated(request, slug)
    return _usage_response(
        request,
        selectors.usage_record_list(data_center=dc),
        fmt=fmt,
        filename=f"usage-{dc.slug}",
        filters={},
        scope={"data_center": dc.slug},
    )


@login_required
def my_usage_export(request: SignedInRequest, fmt: str) -> HttpResponseBase:
    vouchers = voucher_selectors.voucher_list(user=request.user)
    if not vouchers.exists():
        raise Http404
    records = UsageRecord.objects.filter(voucher__in=vouchers.values("pk"))
    filters = {}
    if code := request.GET.get("voucher", "").strip()[:24]:
        if not vouchers.filter(code=code).exists():
            raise Http404
        records = records.filter(voucher__code=code)
        filters["voucher"] = code
    return _usage_response(
        request,
        records,
        fmt=fmt,
        filename="my-usage",
        filters=filters,
        scope={"companies": sorted(set(vouchers.values_list("company_id", flat=True)))},
    )


# --- settlement statements -------------------------------------------------------------------


def _settlement_rows(settlements, *, counterpart: str) -> Iterator[tuple]:
    status = labelled(SettlementStatus.choices)
    rows = settlements.values_list(
        "pk",
        "period",
        counterpart,
        "status",
        "records",
        "amount_total",
        "covered_total",
        "issued_at",
        "confirmed_at",
        "paid_at",
        "payment_ref",
    )
    for pk, period, who, st, *rest in rows.iterator(chunk_size=2000):
        yield (pk, f"{period:%Y-%m}", who, status(st), *rest)


def _settlement_headers(counterpart: str) -> list[str]:
    return [
        "#",
        _("Period"),
        counterpart,
        _("Status"),
        _("Records"),
        _("List price total"),
        _("Covered total"),
        _("Issued at"),
        _("Confirmed at"),
        _("Paid at"),
        _("Payment reference"),
    ]


def _audited(filters: dict) -> dict:
    filters = dict(filters)
    filters.pop("newest_first", None)
    return export_filters(filters)


@staff_required(*CITY_EXPORTERS)
def settlement_export(request: SignedInRequest, city_slug: str, fmt: str) -> HttpResponseBase:
    filters = settlement_filters(request)
    settlements = selectors.settlement_list(city=request.city, **filters)
    return export_response(
        request,
        kind="settlements",
        fmt=_format(fmt),
        headers=_settlement_headers(_("Data center")),
        rows=_settlement_rows(
            settlements,
            counterpart="data_center__name_zh" if _zh() else "data_center__name_en",
        ),
        filename=f"settlements-{request.city.slug}",
        filters=_audited(filters),
        city=request.city,
    )


@login_required
def console_settlement_export(request: SignedInRequest, slug: str, fmt: str) -> HttpResponseBase:
    dc = _operated(request, slug)
    filters = settlement_filters(request)
    settlements = selectors.settlement_list(data_center=dc, issued_only=True, **filters)
    return export_response(
        request,
        kind="settlements",
        fmt=_format(fmt),
        headers=_settlement_headers(_("City")),
        rows=_settlement_rows(
            settlements, counterpart="city__name_zh" if _zh() else "city__name_en"
        ),
        filename=f"settlements-{dc.slug}",
        filters=_audited(filters),
        scope={"data_center": dc.slug},
    )
