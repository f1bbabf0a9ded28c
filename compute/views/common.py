"""What the compute app's screens share: the confirmation page of a destructive action,
and the settlement statements' filters and downloads (city staff and data centers)."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from compute.models import Settlement, SettlementStatus
from compute.settlements import parse_period
from compute.statements import statement_csv, statement_pdf
from portal.errors import DomainError
from portal.forms import apply_domain_error


def confirm(
    request: HttpRequest,
    *,
    title: str,
    message: str,
    form,
    back: str,
    action: Callable[[dict], object],
    done: str,
    redirect_to: str,
) -> HttpResponse:
    """A destructive action: GET shows what will happen, POST (with its reason) does it."""
    if request.method == "POST" and form.is_valid():
        try:
            action(form.cleaned_data)
        except DomainError as error:
            apply_domain_error(form, error)
        else:
            messages.success(request, done)
            return redirect(redirect_to)
    return render(
        request,
        "compute/confirm.html",
        {"title": title, "message": message, "form": form, "back": back},
    )


def settlement_filters(request: HttpRequest) -> dict:
    """The statement list's filters from the query string, for `settlement_list`; a
    malformed period is reported and ignored."""
    filters: dict = {"newest_first": True}
    period, status = request.GET.get("period", ""), request.GET.get("status", "")
    if period:
        try:
            filters["period"] = parse_period(period)
        except DomainError as error:
            messages.error(request, error.message)
    if status in SettlementStatus.values:
        filters["status"] = status
    filters["data_center_slug"] = request.GET.get("data_center", "")
    return filters


def settlement_download(settlement: Settlement, kind: str) -> HttpResponse:
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
