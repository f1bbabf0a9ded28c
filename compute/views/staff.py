"""The city staff's screens (/<city>/staff/…): the city's vouchers and their ledgers
(suspend, resume, revoke), data-center registrations, feed health and reconciliation,
and settlement statements (build drafts, issue, record payment).

Every lookup goes through a scoped selector, so another city's voucher or statement is a
404, never a 403.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from compute import selectors, services
from compute.forms import ReasonForm, RegistrationForm, VoucherSearchForm
from compute.models import RedemptionStatus, SettlementStatus
from compute.settlements import (
    allowed_steps,
    parse_period,
    previous_month,
    settlement_build,
    settlement_issue,
    settlement_mark_paid,
    settlements_build_month,
)
from compute.views.common import confirm, settlement_download, settlement_filters
from portal.errors import DomainError
from portal.forms import apply_domain_error
from portal.http import CityRequest, SignedInRequest, page_of
from portal.models import Role
from portal.tenancy import has_role, staff_required
from vouchers import ledger
from vouchers import selectors as voucher_selectors
from vouchers.models import Voucher

# --- vouchers ----------------------------------------------------------------------------------


@staff_required()
def staff_vouchers(request: SignedInRequest, city_slug: str) -> HttpResponse:
    form = VoucherSearchForm(request.GET or None)
    query = status = ""
    if form.is_valid():
        query, status = form.cleaned_data["q"].strip(), form.cleaned_data["status"]
    vouchers = voucher_selectors.voucher_list(city=request.city, query=query, status=status)
    return render(
        request,
        "compute/staff_vouchers.html",
        {"city": request.city, "form": form, "page": page_of(request, vouchers)},
    )


def _city_voucher(request: CityRequest, code: str) -> Voucher:
    return voucher_selectors.voucher_get(city=request.city, code=code)


@staff_required()
def staff_voucher(request: SignedInRequest, city_slug: str, code: str) -> HttpResponse:
    voucher = _city_voucher(request, code)
    return render(
        request,
        "compute/staff_voucher.html",
        {
            "city": request.city,
            "voucher": voucher,
            "entries": page_of(request, voucher_selectors.ledger_entry_list(voucher=voucher)),
            "redemptions": selectors.redemption_list(voucher=voucher),
            "usage": selectors.usage_total_list(voucher=voucher),
            "can_manage": has_role(request.user, request.city, Role.PROGRAM_MANAGER),
        },
    )


_STATUS_ACTIONS = {
    "suspend": ledger.voucher_suspend,
    "resume": ledger.voucher_resume,
    "revoke": ledger.voucher_revoke,
}


@staff_required(Role.PROGRAM_MANAGER)
def staff_voucher_status(request: SignedInRequest, city_slug: str, code: str, action: str):
    if action not in _STATUS_ACTIONS:
        raise Http404
    voucher = _city_voucher(request, code)
    service = _STATUS_ACTIONS[action]
    titles = {
        "suspend": _("Suspend the voucher"),
        "resume": _("Resume the voucher"),
        "revoke": _("Revoke the voucher"),
    }
    messages_ = {
        "suspend": _("Data centers will not be able to charge it until it is resumed."),
        "resume": _("Data centers will be able to charge it again."),
        "revoke": _(
            "The voucher ends for good and its remaining ¥%(balance)s returns to the "
            "program's budget. This cannot be undone."
        )
        % {"balance": f"{voucher.balance:,.2f}"},
    }
    back = f"/{request.city.slug}/staff/vouchers/{voucher.code}/"
    return confirm(
        request,
        title=f"{titles[action]} {voucher.code}",
        message=messages_[action],
        form=ReasonForm(request.POST or None),
        back=back,
        action=lambda data: service(voucher=voucher, actor=request.user, reason=data["reason"]),
        done={"suspend": _("Suspended."), "resume": _("Resumed."), "revoke": _("Revoked.")}[action],
        redirect_to=back,
    )


# --- data centers, feed health and reconciliation ----------------------------------------------


@staff_required()
def staff_data_centers(request: SignedInRequest, city_slug: str) -> HttpResponse:
    can_manage = has_role(request.user, request.city, Role.PROGRAM_MANAGER)
    form = RegistrationForm(request.POST or None) if can_manage else None
    if request.method == "POST":
        if not can_manage or form is None:
            raise Http404
        if form.is_valid():
            try:
                services.registration_set(
                    city=request.city,
                    data_center=form.cleaned_data["data_center"],
                    status=form.cleaned_data["status"],
                    actor=request.user,
                )
            except DomainError as error:
                apply_domain_error(form, error)
            else:
                messages.success(request, _("Registration saved."))
                return redirect("compute:staff_data_centers", city_slug=request.city.slug)
    return render(
        request,
        "compute/staff_data_centers.html",
        {
            "city": request.city,
            "registrations": selectors.registration_list(city=request.city, count_live=True),
            "form": form,
        },
    )


@staff_required()
def staff_sync(request: SignedInRequest, city_slug: str) -> HttpResponse:
    """The city's data centers' feed health, their latest runs, and what reconciliation
    found for this city."""
    # The staff home's work lists link here with ?feed=unhealthy and ?open=1.
    unhealthy_only = request.GET.get("feed") == "unhealthy"
    open_only = request.GET.get("open") == "1"
    return render(
        request,
        "compute/staff_sync.html",
        {
            "city": request.city,
            "rows": selectors.feed_health_list(city=request.city, unhealthy_only=unhealthy_only),
            "page": page_of(
                request, selectors.discrepancy_list(city=request.city, open_only=open_only)
            ),
            "unhealthy_only": unhealthy_only,
            "open_only": open_only,
        },
    )


@staff_required()
def staff_redemptions(request: SignedInRequest, city_slug: str) -> HttpResponse:
    """The redemptions of the city's vouchers, optionally of one status (the staff
    home links here for those still waiting for their data center)."""
    status = request.GET.get("status", "")
    if status not in RedemptionStatus.values:
        status = ""
    redemptions = selectors.redemption_list(city=request.city, status=status)
    return render(
        request,
        "compute/staff_redemptions.html",
        {
            "city": request.city,
            "page": page_of(request, redemptions),
            "status": status,
            "statuses": RedemptionStatus.choices,
        },
    )


# --- settlement statements -----------------------------------------------------------------------


@staff_required()
def staff_settlements(request: SignedInRequest, city_slug: str) -> HttpResponse:
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
    settlements = selectors.settlement_list(city=request.city, **settlement_filters(request))
    registrations = selectors.registration_list(city=request.city)
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
    request: SignedInRequest, city_slug: str, pk: int, download: str = ""
) -> HttpResponse:
    settlement = selectors.settlement_get(city=request.city, pk=pk)
    if download:
        return settlement_download(settlement, download)
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
            "lines": page_of(request, selectors.settlement_line_list(settlement=settlement)),
            "steps": allowed_steps(settlement, party="program_manager") if can_manage else [],
            "can_rebuild": can_manage and settlement.status == SettlementStatus.DRAFT,
            "base": f"/{request.city.slug}/staff/settlements/{settlement.pk}/",
        },
    )
