"""Settlement screens: the city's staff (list, build drafts, issue, record payment) and
the data center's operators (list, confirm); both download CSV and PDF."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from compute import selectors
from compute.models import Settlement, SettlementStatus
from compute.settlements import (
    allowed_steps,
    parse_period,
    previous_month,
    settlement_build,
    settlement_confirm,
    settlement_issue,
    settlement_mark_paid,
    settlements_build_month,
)
from compute.statements import statement_csv, statement_pdf
from portal.errors import DomainError
from portal.http import page_of
from portal.models import Role
from portal.tenancy import has_role, staff_required


def _filtered(request: HttpRequest, settlements):
    period, status = request.GET.get("period", ""), request.GET.get("status", "")
    if period:
        try:
            settlements = settlements.filter(period=parse_period(period))
        except DomainError as error:
            messages.error(request, error.message)
    if status in SettlementStatus.values:
        settlements = settlements.filter(status=status)
    data_center = request.GET.get("data_center", "")
    if data_center:
        settlements = settlements.filter(data_center__slug=data_center)
    return settlements.order_by("-period", "id")


def _download(settlement: Settlement, kind: str) -> HttpResponse:
    name = (
        f"settlement-{settlement.city.slug}-{settlement.data_center.slug}-{settlement.period:%Y-%m}"
    )
    if kind == "csv":
        response = HttpResponse(statement_csv(settlement), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
        return response
    if kind == "pdf":
        response = HttpResponse(statement_pdf(settlement), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{name}.pdf"'
        return response
    raise Http404


@staff_required()
def staff_settlements(request: HttpRequest, city_slug: str) -> HttpResponse:
    can_manage = has_role(request.user, request.city, Role.PROGRAM_MANAGER)
    if request.method == "POST":
        if not can_manage:
            raise Http404
        try:
            period = parse_period(request.POST.get("period", ""))
            built = settlements_build_month(period=period, city=request.city)
        except DomainError as error:
            messages.error(request, error.message)
        else:
            messages.success(
                request,
                ngettext(
                    "%(n)s draft statement built.", "%(n)s draft statements built.", len(built)
                )
                % {"n": len(built)},
            )
        return redirect(request.path)
    settlements = _filtered(request, selectors.city_settlements(city=request.city))
    registrations = request.city.registrations.select_related("data_center").order_by(
        "data_center__slug"
    )
    return render(
        request,
        "compute/staff_settlements.html",
        {
            "city": request.city,
            "page": page_of(request, settlements),
            "can_manage": can_manage,
            "default_period": f"{previous_month():%Y-%m}",
            "data_centers": [r.data_center for r in registrations],
            "statuses": SettlementStatus.choices,
        },
    )


@staff_required()
def staff_settlement(
    request: HttpRequest, city_slug: str, pk: int, download: str = ""
) -> HttpResponse:
    settlement = get_object_or_404(selectors.city_settlements(city=request.city), pk=pk)
    if download:
        return _download(settlement, download)
    can_manage = has_role(request.user, request.city, Role.PROGRAM_MANAGER)
    if request.method == "POST":
        step = request.POST.get("step")
        if not can_manage or step not in [
            *allowed_steps(settlement, party="program_manager"),
            "rebuild",
        ]:
            raise Http404
        try:
            if step == "issue":
                settlement_issue(settlement=settlement, actor=request.user)
            elif step == "mark_paid":
                settlement_mark_paid(
                    settlement=settlement,
                    actor=request.user,
                    payment_ref=request.POST.get("payment_ref", ""),
                )
            else:
                settlement_build(
                    city=request.city, data_center=settlement.data_center, period=settlement.period
                )
        except DomainError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, _("Done."))
        return redirect(request.path)
    return render(
        request,
        "compute/settlement.html",
        {
            "settlement": settlement,
            "lines": page_of(request, settlement.lines.order_by("id")),
            "steps": allowed_steps(settlement, party="program_manager") if can_manage else [],
            "can_rebuild": can_manage and settlement.status == SettlementStatus.DRAFT,
            "base": f"/{request.city.slug}/staff/settlements/{settlement.pk}/",
        },
    )


def _operated(request: HttpRequest, slug: str):
    return get_object_or_404(selectors.data_centers_operated_by(user=request.user), slug=slug)


@login_required
def console_settlements(request: HttpRequest, slug: str) -> HttpResponse:
    dc = _operated(request, slug)
    settlements = _filtered(
        request, selectors.settlement_list(data_center=dc).exclude(status="draft")
    )
    return render(
        request,
        "compute/console_settlements.html",
        {"dc": dc, "page": page_of(request, settlements), "statuses": SettlementStatus.choices},
    )


@login_required
def console_settlement(
    request: HttpRequest, slug: str, pk: int, download: str = ""
) -> HttpResponse:
    dc = _operated(request, slug)
    # Drafts are the city's working copies; data centers see statements once issued.
    settlement = get_object_or_404(
        selectors.settlement_list(data_center=dc).exclude(status="draft"), pk=pk
    )
    if download:
        return _download(settlement, download)
    if request.method == "POST":
        if request.POST.get("step") != "confirm":
            raise Http404
        try:
            settlement_confirm(settlement=settlement, data_center=dc, actor=request.user)
        except DomainError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, _("Statement confirmed."))
        return redirect(request.path)
    return render(
        request,
        "compute/settlement.html",
        {
            "dc": dc,
            "settlement": settlement,
            "lines": page_of(request, settlement.lines.order_by("id")),
            "steps": allowed_steps(settlement, party="data_center"),
            "base": f"/dc/{dc.slug}/settlements/{settlement.pk}/",
        },
    )
