"""Screens of a decision's aftermath: the company's answer to an award (accept or
decline, each through a confirmation page), the decision letters (downloaded by the
company's members and the city's staff), and the program managers' letter templates."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from portal.audit import audit_record
from portal.errors import DomainError
from portal.forms import apply_domain_error
from portal.http import SignedInRequest
from portal.models import Role
from portal.tenancy import staff_required
from vouchers import letter_selectors, selectors, services, workflow
from vouchers.forms import LetterTemplateForm
from vouchers.letters import DEFAULT_TEMPLATES, PLACEHOLDERS, TEMPLATE_FIELDS
from vouchers.models import DecisionLetter, LetterKind

ANSWERS = {"accept": "accept_award", "decline": "decline_award"}


@login_required
def award_answer(request: SignedInRequest, pk: int, answer: str) -> HttpResponse:
    """GET: what accepting or declining means, with a confirmation; POST with the
    confirmation ticked: the service."""
    app = selectors.application_get(user=request.user, pk=pk)
    if answer not in ("accept", "decline"):
        raise Http404
    if request.method == "POST":
        if request.POST.get("confirm") != "yes":
            messages.error(request, _("Tick the confirmation first."))
            return redirect("vouchers:award", pk=app.pk, answer=answer)
        service = services.award_accept if answer == "accept" else services.award_decline
        try:
            service(application=app, actor=request.user)
        except DomainError as error:
            messages.error(request, error.message)
        else:
            messages.success(
                request,
                _("Award accepted: your voucher is issued.")
                if answer == "accept"
                else _("Award declined: the amount returns to the program's budget."),
            )
        return redirect("vouchers:application", pk=app.pk)
    return render(
        request,
        "vouchers/award_confirm.html",
        {
            "app": app,
            "answer": answer,
            "allowed": ANSWERS[answer] in workflow.application_actions(app, request.user),
        },
    )


def _pdf(letter: DecisionLetter) -> HttpResponse:
    response = HttpResponse(bytes(letter.pdf), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{letter.number}.pdf"'
    response["X-Content-SHA256"] = letter.sha256
    return response


@login_required
def my_letter(request: SignedInRequest, pk: int, letter_id: int) -> HttpResponse:
    app = selectors.application_get(user=request.user, pk=pk)
    return _pdf(letter_selectors.letter_get(application=app, pk=letter_id))


@staff_required()
def staff_letter(request: SignedInRequest, city_slug: str, pk: int, letter_id: int) -> HttpResponse:
    app = selectors.application_get(city=request.city, pk=pk)
    letter = letter_selectors.letter_get(application=app, pk=letter_id)
    audit_record(
        action="letter.download",
        city=request.city,
        actor=request.user,
        target=app,
        data={"number": letter.number},
        ip=request.META.get("REMOTE_ADDR"),
    )
    return _pdf(letter)


@staff_required(Role.PROGRAM_MANAGER)
def staff_letter_templates(request: SignedInRequest, city_slug: str, slug: str) -> HttpResponse:
    """One form per kind of letter; the posted kind is saved, every field's problem
    shown next to it."""
    program = selectors.program_get(city=request.city, slug=slug)
    own = letter_selectors.letter_template_list(program=program)
    posted = request.POST.get("kind") if request.method == "POST" else None
    if posted is not None and posted not in LetterKind.values:
        raise Http404
    forms = []
    for kind in LetterKind:
        initial = (
            {f: getattr(own[kind], f) for f in TEMPLATE_FIELDS}
            if kind in own
            else dict(DEFAULT_TEMPLATES[kind])
        )
        form = LetterTemplateForm(
            request.POST if posted == kind else None, initial=initial, prefix=kind.value
        )
        if posted == kind and form.is_valid():
            try:
                services.letter_template_save(
                    program=program, kind=kind, actor=request.user, values=form.cleaned_data
                )
            except DomainError as error:
                apply_domain_error(form, error)
                messages.error(request, error.message)
            else:
                messages.success(request, _("Letter template saved."))
                return redirect("vouchers:staff_letter_templates", city_slug=city_slug, slug=slug)
        forms.append((kind, kind in own, form))
    return render(
        request,
        "vouchers/staff_letter_templates.html",
        {"city": request.city, "program": program, "forms": forms, "placeholders": PLACEHOLDERS},
    )
