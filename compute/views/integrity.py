"""Integrity screens: the city staff's findings queue (/<city>/staff/findings/) with the
decision on each, and a data center's findings, inventory and related parties in its
console. Scoped selectors: another city's or data center's finding is a 404."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from compute import selectors as compute_selectors
from compute.integrity import selectors, services
from compute.integrity.forms import (
    IntegrityRulesForm,
    InventoryForm,
    PriceBandForm,
    RelatedPartyForm,
)
from compute.integrity.models import FindingStatus
from portal.errors import DomainError
from portal.forms import apply_domain_error
from portal.http import SignedInRequest, page_of
from portal.models import Role
from portal.tenancy import has_role, staff_required
from vouchers.selectors import program_get, program_list


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(
        label=gettext_lazy("Decision"),
        choices=[
            ("confirm", gettext_lazy("Confirm: void the records")),
            ("clear", gettext_lazy("Clear: the usage is sound")),
        ],
        widget=forms.RadioSelect,
    )
    reason = forms.CharField(label=gettext_lazy("Reason"), max_length=300)


_DECIDE = {"confirm": services.finding_confirm, "clear": services.finding_clear}


def _status(request: SignedInRequest) -> str:
    status = request.GET.get("status", FindingStatus.OPEN)
    return status if status in [*FindingStatus.values, "all"] else FindingStatus.OPEN


@staff_required()
def staff_findings(request: SignedInRequest, city_slug: str) -> HttpResponse:
    status = _status(request)
    findings = selectors.finding_list(city=request.city, status=status)
    return render(
        request,
        "compute/staff_findings.html",
        {
            "city": request.city,
            "status": status,
            "statuses": FindingStatus.choices,
            "page": page_of(request, findings),
            "programs": program_list(city=request.city)
            if has_role(request.user, request.city, Role.PROGRAM_MANAGER)
            else [],
        },
    )


@staff_required()
def staff_finding(request: SignedInRequest, city_slug: str, pk: int) -> HttpResponse:
    finding = selectors.finding_get(pk=pk, city=request.city)
    can_decide = has_role(request.user, request.city, Role.PROGRAM_MANAGER)
    form = DecisionForm(request.POST or None)
    if request.method == "POST":
        if not can_decide:
            raise PermissionDenied
        if form.is_valid():
            decide = _DECIDE[form.cleaned_data["decision"]]
            try:
                decide(finding=finding, actor=request.user, reason=form.cleaned_data["reason"])
            except DomainError as error:
                apply_domain_error(form, error)
            else:
                messages.success(request, _("Decided."))
                return redirect("compute:staff_finding", city_slug=request.city.slug, pk=finding.pk)
    return render(
        request,
        "compute/staff_finding.html",
        {
            "city": request.city,
            "finding": finding,
            "records": page_of(request, selectors.finding_record_list(finding=finding)),
            "form": form,
            "can_decide": can_decide and finding.status == FindingStatus.OPEN,
        },
    )


@login_required
def console_findings(request: SignedInRequest, slug: str) -> HttpResponse:
    dc = compute_selectors.data_center_get(operator=request.user, slug=slug)
    return render(
        request,
        "compute/console_findings.html",
        {"dc": dc, "page": page_of(request, selectors.finding_list(data_center=dc, status="all"))},
    )


@login_required
def console_inventory(request: SignedInRequest, slug: str) -> HttpResponse:
    dc = compute_selectors.data_center_get(operator=request.user, slug=slug)
    registrations = selectors.registration_list(data_center=dc)
    form = InventoryForm(request.POST or None, registrations=registrations)
    party_form = RelatedPartyForm(request.POST or None, prefix="party")
    if request.method == "POST":
        try:
            if request.POST.get("kind") == "party":
                form = InventoryForm(registrations=registrations)
                if party_form.is_valid():
                    services.related_party_add(
                        data_center=dc, actor=request.user, **party_form.cleaned_data
                    )
                    messages.success(request, _("Declared."))
                    return redirect("compute:console_inventory", slug=dc.slug)
            else:
                party_form = RelatedPartyForm(prefix="party")
                if form.is_valid():
                    services.inventory_declare(actor=request.user, **form.cleaned_data)
                    messages.success(request, _("Declared."))
                    return redirect("compute:console_inventory", slug=dc.slug)
        except DomainError as error:
            apply_domain_error(party_form if request.POST.get("kind") == "party" else form, error)
    return render(
        request,
        "compute/console_inventory.html",
        {
            "dc": dc,
            "form": form,
            "party_form": party_form,
            "inventory": selectors.inventory_list(data_center=dc),
            "parties": selectors.related_party_list(data_center=dc),
        },
    )


@staff_required(Role.PROGRAM_MANAGER)
def staff_program_integrity(request: SignedInRequest, city_slug: str, slug: str) -> HttpResponse:
    """A program's checks: the rules and the price bands per accelerator model."""
    program = program_get(city=request.city, slug=slug)
    rules = selectors.integrity_rules_get(program=program)
    kind = request.POST.get("kind") if request.method == "POST" else None
    rules_form = IntegrityRulesForm(
        request.POST if kind == "rules" else None, instance=rules, prefix="rules"
    )
    band_form = PriceBandForm(request.POST if kind == "band" else None, prefix="band")
    form = rules_form if kind == "rules" else band_form
    if kind in ("rules", "band") and form.is_valid():
        try:
            if kind == "rules":
                services.integrity_rules_set(
                    program=program, actor=request.user, **rules_form.cleaned_data
                )
            else:
                services.price_band_set(
                    program=program, actor=request.user, **band_form.cleaned_data
                )
        except DomainError as error:
            apply_domain_error(form, error)
        else:
            messages.success(request, _("Saved."))
            return redirect(
                "compute:staff_program_integrity", city_slug=request.city.slug, slug=slug
            )
    return render(
        request,
        "compute/staff_program_integrity.html",
        {
            "city": request.city,
            "program": program,
            "rules_form": rules_form,
            "band_form": band_form,
            "bands": selectors.price_band_list(program=program),
        },
    )
