"""Screens of the compute app: a company's vouchers and redemptions, the data-center
console, and the city staff's view of vouchers and their ledgers.

Every lookup goes through a scoped selector, so another company's voucher, another
data center's batch or another city's voucher is a 404, never a 403.
"""

from __future__ import annotations

from collections.abc import Callable

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _

from compute import selectors, services
from compute.batches import failed_batches, usage_batch_retry
from compute.forms import (
    AcceptForm,
    ApiKeyForm,
    ReasonForm,
    RedemptionRequestForm,
    RegistrationForm,
    VoucherSearchForm,
)
from compute.models import (
    ApiKey,
    BatchStatus,
    DataCenter,
    Discrepancy,
    Redemption,
    RedemptionStatus,
    Registration,
    SyncRun,
)
from portal.errors import DomainError
from portal.forms import apply_domain_error
from portal.http import page_of
from portal.models import Role
from portal.tenancy import has_role, staff_required
from vouchers import ledger


def _confirm(
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


# --- the company's side ---------------------------------------------------------------


@login_required
def my_vouchers(request: HttpRequest) -> HttpResponse:
    vouchers = selectors.vouchers_of_user(user=request.user).order_by("-issued_at")
    return render(request, "compute/my_vouchers.html", {"page": page_of(request, vouchers)})


def _my_voucher(request: HttpRequest, code: str):
    return get_object_or_404(selectors.vouchers_of_user(user=request.user), code=code)


@login_required
def my_voucher(request: HttpRequest, code: str) -> HttpResponse:
    voucher = _my_voucher(request, code)
    data_centers = selectors.data_centers_for_voucher(voucher=voucher)
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
    entries = voucher.entries.order_by("-id")
    redemptions = voucher.redemptions.select_related("data_center").order_by("-created_at")
    return render(
        request,
        "compute/my_voucher.html",
        {
            "voucher": voucher,
            "form": form,
            "can_request": voucher.status == "active" and data_centers.exists(),
            "entries": page_of(request, entries),
            "redemptions": redemptions,
            "usage": selectors.usage_by_data_center(voucher=voucher),
        },
    )


def _my_redemption(request: HttpRequest, pk: int) -> Redemption:
    return get_object_or_404(
        Redemption.objects.filter(voucher__company__members=request.user).select_related(
            "voucher", "data_center"
        ),
        pk=pk,
    )


@login_required
def my_redemption_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    redemption = _my_redemption(request, pk)
    back = f"/my/vouchers/{redemption.voucher.code}/"
    return _confirm(
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
def my_redemption_close(request: HttpRequest, pk: int) -> HttpResponse:
    redemption = _my_redemption(request, pk)
    back = f"/my/vouchers/{redemption.voucher.code}/"
    return _confirm(
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


# --- the data-center console --------------------------------------------------------------


def _operated(request: HttpRequest, slug: str) -> DataCenter:
    return get_object_or_404(selectors.data_centers_operated_by(user=request.user), slug=slug)


@login_required
def console_list(request: HttpRequest) -> HttpResponse:
    centers = list(selectors.data_centers_operated_by(user=request.user))
    if len(centers) == 1:
        return redirect("compute:console", slug=centers[0].slug)
    if not centers:
        raise Http404
    return render(request, "compute/console_list.html", {"centers": centers})


@login_required
def console(request: HttpRequest, slug: str) -> HttpResponse:
    dc = _operated(request, slug)
    requested = (
        selectors.redemption_list(data_center=dc)
        .filter(status=RedemptionStatus.REQUESTED)
        .order_by("created_at")[:50]
    )
    batches = selectors.batch_list(data_center=dc).defer("body", "results_json")[:10]
    registrations = Registration.objects.filter(data_center=dc).select_related("city")
    return render(
        request,
        "compute/console.html",
        {
            "dc": dc,
            "requested": requested,
            "batches": batches,
            "registrations": registrations,
            "keys": dc.api_keys.filter(revoked_at__isnull=True),
        },
    )


@login_required
def console_redemptions(request: HttpRequest, slug: str) -> HttpResponse:
    dc = _operated(request, slug)
    status = request.GET.get("status", "")
    redemptions = selectors.redemption_list(data_center=dc)
    if status in RedemptionStatus.values:
        redemptions = redemptions.filter(status=status)
    return render(
        request,
        "compute/console_redemptions.html",
        {
            "dc": dc,
            "page": page_of(request, redemptions),
            "status": status,
            "statuses": RedemptionStatus.choices,
        },
    )


def _console_redemption(request: HttpRequest, slug: str, pk: int) -> tuple[DataCenter, Redemption]:
    dc = _operated(request, slug)
    return dc, get_object_or_404(selectors.redemption_list(data_center=dc), pk=pk)


@login_required
def console_redemption_accept(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    dc, redemption = _console_redemption(request, slug, pk)
    back = f"/dc/{dc.slug}/redemptions/"
    return _confirm(
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
def console_redemption_reject(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    dc, redemption = _console_redemption(request, slug, pk)
    back = f"/dc/{dc.slug}/redemptions/"
    return _confirm(
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


@login_required
def console_batches(request: HttpRequest, slug: str) -> HttpResponse:
    dc = _operated(request, slug)
    batches = selectors.batch_list(data_center=dc).defer("body", "results_json")
    only_rejected = request.GET.get("rejected") == "1"
    only_failed = request.GET.get("failed") == "1"
    if only_rejected:
        batches = batches.filter(rejected__gt=0)
    if only_failed:
        batches = batches.filter(status=BatchStatus.FAILED)
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
def console_batch_retry(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """The dead letter's way back: a failed batch queued again, after its fault is mended."""
    dc = _operated(request, slug)
    batch = get_object_or_404(selectors.batch_list(data_center=dc).defer("body"), pk=pk)
    back = reverse("compute:console_batch", args=[dc.slug, batch.pk])
    return _confirm(
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
def console_batch(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    dc = _operated(request, slug)
    batch = get_object_or_404(selectors.batch_list(data_center=dc).defer("body"), pk=pk)
    rejected = [r for r in batch.results if r["status"] == "rejected"]
    return render(
        request,
        "compute/console_batch.html",
        {"dc": dc, "batch": batch, "rejected": page_of(request, rejected, 100)},
    )


@login_required
def console_keys(request: HttpRequest, slug: str) -> HttpResponse:
    dc = _operated(request, slug)
    form = ApiKeyForm(request.POST or None)
    new_key = None
    if request.method == "POST" and form.is_valid():
        try:
            _key, new_key = services.api_key_issue(
                data_center=dc, actor=request.user, name=form.cleaned_data["name"]
            )
        except DomainError as error:
            apply_domain_error(form, error)
        form = ApiKeyForm()
    return render(
        request,
        "compute/console_keys.html",
        {
            "dc": dc,
            "form": form,
            "new_key": new_key,
            "keys": ApiKey.objects.filter(data_center=dc).select_related("created_by"),
        },
    )


@login_required
def console_key_revoke(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    dc = _operated(request, slug)
    key = get_object_or_404(ApiKey.objects.filter(data_center=dc), pk=pk)
    back = f"/dc/{dc.slug}/keys/"
    return _confirm(
        request,
        title=_("Revoke the API key"),
        message=_("Clients using %(prefix)s… will get 401 from now on.") % {"prefix": key.prefix},
        form=ReasonForm(request.POST or None),
        back=back,
        action=lambda data: services.api_key_revoke(key=key, actor=request.user),
        done=_("The key was revoked."),
        redirect_to=back,
    )


# --- city staff ---------------------------------------------------------------------------


@staff_required()
def staff_vouchers(request: HttpRequest, city_slug: str) -> HttpResponse:
    form = VoucherSearchForm(request.GET or None)
    query = status = ""
    if form.is_valid():
        query, status = form.cleaned_data["q"].strip(), form.cleaned_data["status"]
    vouchers = selectors.voucher_search(
        vouchers=selectors.city_vouchers(city=request.city), query=query, status=status
    )
    return render(
        request,
        "compute/staff_vouchers.html",
        {"city": request.city, "form": form, "page": page_of(request, vouchers)},
    )


def _city_voucher(request: HttpRequest, code: str):
    return get_object_or_404(selectors.city_vouchers(city=request.city), code=code)


@staff_required()
def staff_voucher(request: HttpRequest, city_slug: str, code: str) -> HttpResponse:
    voucher = _city_voucher(request, code)
    return render(
        request,
        "compute/staff_voucher.html",
        {
            "city": request.city,
            "voucher": voucher,
            "entries": page_of(request, voucher.entries.order_by("-id")),
            "redemptions": voucher.redemptions.select_related("data_center"),
            "usage": selectors.usage_by_data_center(voucher=voucher),
            "can_manage": has_role(request.user, request.city, Role.PROGRAM_MANAGER),
        },
    )


_STATUS_ACTIONS = {
    "suspend": ledger.voucher_suspend,
    "resume": ledger.voucher_resume,
    "revoke": ledger.voucher_revoke,
}


@staff_required(Role.PROGRAM_MANAGER)
def staff_voucher_status(request: HttpRequest, city_slug: str, code: str, action: str):
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
    return _confirm(
        request,
        title=f"{titles[action]} {voucher.code}",
        message=messages_[action],
        form=ReasonForm(request.POST or None),
        back=back,
        action=lambda data: service(voucher=voucher, actor=request.user, reason=data["reason"]),
        done={"suspend": _("Suspended."), "resume": _("Resumed."), "revoke": _("Revoked.")}[action],
        redirect_to=back,
    )


@staff_required()
def staff_data_centers(request: HttpRequest, city_slug: str) -> HttpResponse:
    can_manage = has_role(request.user, request.city, Role.PROGRAM_MANAGER)
    form = RegistrationForm(request.POST or None) if can_manage else None
    if request.method == "POST":
        if not can_manage:
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
    registrations = (
        Registration.objects.filter(city=request.city)
        .select_related("data_center")
        .annotate(
            live=Count(
                "data_center__redemptions",
                filter=Q(
                    data_center__redemptions__voucher__city=request.city,
                    data_center__redemptions__status=RedemptionStatus.ACTIVE,
                ),
            )
        )
        .order_by("data_center__slug")
    )
    return render(
        request,
        "compute/staff_data_centers.html",
        {"city": request.city, "registrations": registrations, "form": form},
    )


# --- sync health and reconciliation --------------------------------------------------------


@login_required
def console_sync(request: HttpRequest, slug: str) -> HttpResponse:
    dc = _operated(request, slug)
    runs = SyncRun.objects.filter(data_center=dc)
    return render(request, "compute/console_sync.html", {"dc": dc, "page": page_of(request, runs)})


@staff_required()
def staff_sync(request: HttpRequest, city_slug: str) -> HttpResponse:
    """The city's data centers' feed health, their latest runs, and what reconciliation
    found for this city."""
    registrations = list(
        Registration.objects.filter(city=request.city)
        .select_related("data_center")
        .order_by("data_center__slug")
    )
    latest = {
        run.data_center_id: run
        for run in SyncRun.objects.filter(
            pk__in=SyncRun.objects.filter(
                data_center_id__in=[r.data_center_id for r in registrations]
            )
            .order_by("data_center_id", "-started_at")
            .distinct("data_center_id")
            .values("pk")
        )
    }
    rows = [(r, latest.get(r.data_center_id)) for r in registrations]
    discrepancies = (
        Discrepancy.objects.filter(city=request.city)
        .select_related("data_center", "voucher")
        .order_by("resolved_at", "-found_at")
    )
    return render(
        request,
        "compute/staff_sync.html",
        {"city": request.city, "rows": rows, "page": page_of(request, discrepancies)},
    )
