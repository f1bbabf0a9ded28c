"""The company's side (/my/…): its vouchers, their ledgers and usage, and redemptions
requested, cancelled and closed.

Every lookup goes through a scoped selector, so another company's voucher or
redemption is a 404, never a 403.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from compute import selectors, services
from compute.forms import ReasonForm, RedemptionRequestForm
from compute.models import Redemption
from compute.views.common import confirm
from compute.worklists import company_voucher_list
from portal.errors import DomainError
from portal.forms import apply_domain_error
from portal.http import SignedInRequest, page_of
from vouchers import selectors as voucher_selectors
from vouchers.models import Voucher, VoucherStatus


@login_required
def my_vouchers(request: SignedInRequest) -> HttpResponse:
    waiting = request.GET.get("waiting", "")
    vouchers = company_voucher_list(
        vouchers=voucher_selectors.voucher_list(user=request.user), waiting=waiting
    )
    return render(
        request,
        "compute/my_vouchers.html",
        {"page": page_of(request, vouchers), "waiting": waiting in ("unbound", "redemption")},
    )


def _my_voucher(request: SignedInRequest, code: str) -> Voucher:
    return voucher_selectors.voucher_get(user=request.user, code=code)


@login_required
def my_voucher(request: SignedInRequest, code: str) -> HttpResponse:
    voucher = _my_voucher(request, code)
    data_centers = selectors.data_center_list(voucher=voucher)
    form = RedemptionRequestForm(request.POST or None, data_centers=data_centers)
    if request.method == "POST" and form.is_valid():
        try:
            services.redemption_request(
                voucher=voucher,
                data_center=form.cleaned_data["data_center"],
                contract_ref=form.cleaned_data["contract_ref"],
                amount_cap=form.cleaned_data["amount_cap"],
                actor=request.user,
            )
        except DomainError as error:
            apply_domain_error(form, error)
        else:
            messages.success(request, _("Redemption requested; the data center will answer."))
            return redirect("compute:my_voucher", code=voucher.code)
    return render(
        request,
        "compute/my_voucher.html",
        {
            "voucher": voucher,
            "form": form,
            "can_request": voucher.status == VoucherStatus.ACTIVE and data_centers.exists(),
            "entries": page_of(request, voucher_selectors.ledger_entry_list(voucher=voucher)),
            "redemptions": selectors.redemption_list(voucher=voucher),
            "usage": selectors.usage_total_list(voucher=voucher),
        },
    )


def _my_redemption(request: SignedInRequest, pk: int) -> Redemption:
    return selectors.redemption_get(user=request.user, pk=pk)


@login_required
def my_redemption_cancel(request: SignedInRequest, pk: int) -> HttpResponse:
    redemption = _my_redemption(request, pk)
    back = f"/my/vouchers/{redemption.voucher.code}/"
    return confirm(
        request,
        title=_("Cancel the redemption request"),
        message=_("The request to %(dc)s under contract %(ref)s will be withdrawn.")
        % {"dc": redemption.data_center.name, "ref": redemption.contract_ref},
        form=ReasonForm(request.POST or None),
        back=back,
        action=lambda data: services.redemption_cancel(redemption=redemption, actor=request.user),
        done=_("The redemption request was cancelled."),
        redirect_to=back,
    )


@login_required
def my_redemption_close(request: SignedInRequest, pk: int) -> HttpResponse:
    redemption = _my_redemption(request, pk)
    back = f"/my/vouchers/{redemption.voucher.code}/"
    return confirm(
        request,
        title=_("Close the redemption"),
        message=_("%(dc)s will no longer be able to charge this voucher. This cannot be undone.")
        % {"dc": redemption.data_center.name},
        form=ReasonForm(request.POST or None),
        back=back,
        action=lambda data: services.redemption_close(
            redemption=redemption, actor=request.user, reason=data["reason"]
        ),
        done=_("The redemption was closed."),
        redirect_to=back,
    )
