"""The data-center console (/dc/<slug>/…), for the data center's operators: redemptions
to accept or reject, usage batches (and the dead letter's retry), API keys, feed sync
runs, and settlement statements to confirm.

Every lookup goes through a scoped selector, so another data center's batch, key or
statement is a 404, never a 403.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django.utils.translation import gettext as _

from compute import selectors, services
from compute.batches import failed_batches, usage_batch_retry
from compute.forms import AcceptForm, ApiKeyForm, ReasonForm
from compute.models import DataCenter, Redemption, RedemptionStatus, SettlementStatus
from compute.settlements import allowed_steps, settlement_confirm
from compute.views.common import confirm, settlement_download, settlement_filters
from compute.worklists import console_work
from portal.errors import DomainError
from portal.forms import apply_domain_error
from portal.http import SignedInRequest, page_of


def _operated(request: SignedInRequest, slug: str) -> DataCenter:
    return selectors.data_center_get(operator=request.user, slug=slug)


@login_required
def console_list(request: SignedInRequest) -> HttpResponse:
    centers = list(selectors.data_center_list(operator=request.user))
    if len(centers) == 1:
        return redirect("compute:console", slug=centers[0].slug)
    if not centers:
        raise Http404
    return render(request, "compute/console_list.html", {"centers": centers})


@login_required
def console(request: SignedInRequest, slug: str) -> HttpResponse:
    dc = _operated(request, slug)
    requested = selectors.redemption_list(
        data_center=dc, status=RedemptionStatus.REQUESTED, oldest_first=True
    )[:50]
    return render(
        request,
        "compute/console.html",
        {
            "dc": dc,
            "work": console_work(dc),
            "requested": requested,
            "batches": selectors.batch_list(data_center=dc, without_bodies=True)[:10],
            "registrations": selectors.registration_list(data_center=dc),
            "keys": selectors.api_key_list(data_center=dc, live_only=True),
        },
    )


# --- redemptions -------------------------------------------------------------------------------


@login_required
def console_redemptions(request: SignedInRequest, slug: str) -> HttpResponse:
    dc = _operated(request, slug)
    status = request.GET.get("status", "")
    if status not in RedemptionStatus.values:
        status = ""
    redemptions = selectors.redemption_list(data_center=dc, status=status)
    return render(
        request,
        "compute/console_redemptions.html",
        {
            "dc": dc,
            "page": page_of(request, redemptions),
            "status": request.GET.get("status", ""),
            "statuses": RedemptionStatus.choices,
        },
    )


def _console_redemption(
    request: SignedInRequest, slug: str, pk: int
) -> tuple[DataCenter, Redemption]:
    dc = _operated(request, slug)
    return dc, selectors.redemption_get(data_center=dc, pk=pk)


@login_required
def console_redemption_accept(request: SignedInRequest, slug: str, pk: int) -> HttpResponse:
    dc, redemption = _console_redemption(request, slug, pk)
    back = f"/dc/{dc.slug}/redemptions/"
    return confirm(
        request,
        title=_("Accept the redemption"),
        message=_("%(company)s's voucher %(code)s can then be charged for usage at %(dc)s.")
        % {
            "company": redemption.voucher.company.legal_name,
            "code": redemption.voucher.code,
            "dc": dc.name,
        },
        form=AcceptForm(request.POST or None),
        back=back,
        action=lambda data: services.redemption_accept(
            redemption=redemption,
            data_center=dc,
            contract_ref=data["contract_ref"],
            actor=request.user,
        ),
        done=_("The redemption is active."),
        redirect_to=back,
    )


@login_required
def console_redemption_reject(request: SignedInRequest, slug: str, pk: int) -> HttpResponse:
    dc, redemption = _console_redemption(request, slug, pk)
    back = f"/dc/{dc.slug}/redemptions/"
    return confirm(
        request,
        title=_("Reject the redemption"),
        message=_("The company will see your reason.")
        + f" {redemption.voucher.company.legal_name} · {redemption.voucher.code}",
        form=ReasonForm(request.POST or None),
        back=back,
        action=lambda data: services.redemption_reject(
            redemption=redemption, data_center=dc, reason=data["reason"], actor=request.user
        ),
        done=_("The redemption was rejected."),
        redirect_to=back,
    )


# --- usage batches -----------------------------------------------------------------------------


@login_required
def console_batches(request: SignedInRequest, slug: str) -> HttpResponse:
    dc = _operated(request, slug)
    only_rejected = request.GET.get("rejected") == "1"
    only_failed = request.GET.get("failed") == "1"
    batches = selectors.batch_list(
        data_center=dc, only_rejected=only_rejected, only_failed=only_failed, without_bodies=True
    )
    return render(
        request,
        "compute/console_batches.html",
        {
            "dc": dc,
            "page": page_of(request, batches),
            "only_rejected": only_rejected,
            "only_failed": only_failed,
            "failed_count": failed_batches(data_center=dc).count(),
        },
    )


@login_required
def console_batch_retry(request: SignedInRequest, slug: str, pk: int) -> HttpResponse:
    """The dead letter's way back: a failed batch queued again, after its fault is mended."""
    dc = _operated(request, slug)
    batch = selectors.batch_get(data_center=dc, pk=pk)
    back = reverse("compute:console_batch", args=[dc.slug, batch.pk])
    return confirm(
        request,
        title=_("Retry batch #%(n)s") % {"n": batch.pk},
        message=_(
            "The batch is queued again and applied as if it had just arrived; records "
            "already charged are not charged twice. Last failure: %(reason)s"
        )
        % {"reason": batch.failure_reason or "—"},
        form=forms.Form(request.POST if request.method == "POST" else None),
        back=back,
        action=lambda _data: usage_batch_retry(batch=batch, actor=request.user),
        done=_("The batch was queued again."),
        redirect_to=back,
    )


@login_required
def console_batch(request: SignedInRequest, slug: str, pk: int) -> HttpResponse:
    dc = _operated(request, slug)
    batch = selectors.batch_get(data_center=dc, pk=pk)
    rejected = [r for r in batch.results if r["status"] == "rejected"]
    return render(
        request,
        "compute/console_batch.html",
        {"dc": dc, "batch": batch, "rejected": page_of(request, rejected, 100)},
    )


# --- API keys and feed sync ----------------------------------------------------------------------


@login_required
def console_keys(request: SignedInRequest, slug: str) -> HttpResponse:
    dc = _operated(request, slug)
    form = ApiKeyForm(request.POST or None)
    new_key = None
    if request.method == "POST" and form.is_valid():
        try:
            _key, new_key = services.api_key_issue(
                data_center=dc,
                actor=request.user,
                name=form.cleaned_data["name"],
                expires_on=form.cleaned_data["expires_on"],
            )
            form = ApiKeyForm()
        except DomainError as error:
            apply_domain_error(form, error)
    response = render(
        request,
        "compute/console_keys.html",
        {
            "dc": dc,
            "form": form,
            "new_key": new_key,
            "keys": selectors.api_key_list(data_center=dc),
        },
    )
    if new_key:
        # The key is in this page, once: no browser or proxy may keep a copy of it.
        patch_cache_control(response, no_store=True, private=True)
    return response


@login_required
def console_key_revoke(request: SignedInRequest, slug: str, pk: int) -> HttpResponse:
    dc = _operated(request, slug)
    key = selectors.api_key_get(data_center=dc, pk=pk)
    back = f"/dc/{dc.slug}/keys/"
    return confirm(
        request,
        title=_("Revoke the API key"),
        message=_("Clients using %(prefix)s… will get 401 from now on.") % {"prefix": key.prefix},
        form=ReasonForm(request.POST or None),
        back=back,
        action=lambda data: services.api_key_revoke(key=key, actor=request.user),
        done=_("The key was revoked."),
        redirect_to=back,
    )


@login_required
def console_sync(request: SignedInRequest, slug: str) -> HttpResponse:
    dc = _operated(request, slug)
    runs = selectors.sync_run_list(data_center=dc)
    return render(request, "compute/console_sync.html", {"dc": dc, "page": page_of(request, runs)})


# --- settlement statements -----------------------------------------------------------------------


@login_required
def console_settlements(request: SignedInRequest, slug: str) -> HttpResponse:
    dc = _operated(request, slug)
    settlements = selectors.settlement_list(
        data_center=dc, issued_only=True, **settlement_filters(request)
    )
    return render(
        request,
        "compute/console_settlements.html",
        {"dc": dc, "page": page_of(request, settlements), "statuses": SettlementStatus.choices},
    )


@login_required
def console_settlement(
    request: SignedInRequest, slug: str, pk: int, download: str = ""
) -> HttpResponse:
    dc = _operated(request, slug)
    # Drafts are the city's working copies; data centers see statements once issued.
    settlement = selectors.settlement_get(data_center=dc, pk=pk)
    if download:
        return settlement_download(settlement, download)
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
            "lines": page_of(request, selectors.settlement_line_list(settlement=settlement)),
            "steps": allowed_steps(settlement, party="data_center"),
            "base": f"/dc/{dc.slug}/settlements/{settlement.pk}/",
        },
    )
