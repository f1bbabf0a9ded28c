"""A company's shareholders and managers (/company/<pk>/parties/, issue #19): its members
list, declare and withdraw them, for the related-party check at redemption
(compute.integrity.parties). The company is read through the vouchers app's scoped
selector, so another company's page, or another company's party, is a 404. Linked from
the company's pages through the `vouchers.company` slot (compute/links.py)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _

from compute.integrity import selectors, services
from compute.integrity.forms import RelatedPartyForm
from compute.views.common import confirm
from portal.errors import DomainError
from portal.forms import apply_domain_error
from portal.http import SignedInRequest
from vouchers.selectors import company_get


@login_required
def company_parties(request: SignedInRequest, pk: int) -> HttpResponse:
    company = company_get(user=request.user, pk=pk)
    form = RelatedPartyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.related_party_add(company=company, actor=request.user, **form.cleaned_data)
        except DomainError as error:
            apply_domain_error(form, error)
        else:
            messages.success(request, _("Declared."))
            return redirect("compute:company_parties", pk=company.pk)
    return render(
        request,
        "compute/company_parties.html",
        {
            "company": company,
            "form": form,
            "parties": selectors.related_party_list(company_id=company.pk),
        },
    )


@login_required
def company_party_remove(request: SignedInRequest, pk: int, party_id: int) -> HttpResponse:
    company = company_get(user=request.user, pk=pk)
    party = selectors.related_party_get(pk=party_id, company_id=company.pk)
    back = reverse("compute:company_parties", args=[company.pk])
    return confirm(
        request,
        title=_("Withdraw a shareholder or manager"),
        message=_(
            "%(name)s (…%(code)s) will no longer be declared for %(company)s. Findings "
            "already raised stay."
        )
        % {"name": party.name, "code": party.code[-4:], "company": company.legal_name},
        form=forms.Form(request.POST if request.method == "POST" else None),
        back=back,
        action=lambda _data: services.related_party_remove(party=party, actor=request.user),
        done=_("Withdrawn."),
        redirect_to=back,
    )
