"""Outcome reports' pages: the company's (/company/outcomes/…) where its members fill in
and submit a voucher's report with documents, and the city's (/<city>/staff/outcomes/…)
where program managers accept or return it with comments. Which steps a page offers
comes from `vouchers.outcomes`, so it never offers what the service would refuse."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from portal.audit import audit_record
from portal.errors import DomainError
from portal.forms import apply_domain_error
from portal.http import SignedInRequest, page_of
from portal.models import Role
from portal.tenancy import has_role, staff_required
from vouchers import outcome_selectors, outcomes, services
from vouchers.models import OutcomeDocument, OutcomeReport
from vouchers.outcome_forms import (
    OutcomeDecisionForm,
    OutcomeDocumentForm,
    OutcomeQueueForm,
    OutcomeReportForm,
)
from vouchers.outcome_usage import usage_summary, usage_summary_localised
from vouchers.services.outcomes import OUTCOME_FIELDS


def _download(document: OutcomeDocument) -> FileResponse:
    return FileResponse(
        document.file.open("rb"),
        as_attachment=True,
        filename=document.original_name,
        content_type=document.content_type,
    )


def _tell(request: SignedInRequest, error: DomainError) -> None:
    """A service's refusal as messages: its message, then each field's that says more."""
    messages.error(request, error.message)
    for found in error.fields.values():
        for message in found:
            if str(message) != str(error.message):
                messages.error(request, message)


def _usage(report: OutcomeReport) -> dict:
    """What the report says it used: as submitted, or (while with the company) the
    ledger's figures now, which submission will keep."""
    if report.state in outcomes.EDITABLE or not report.usage_summary:
        return usage_summary_localised(usage_summary(report.voucher))
    return usage_summary_localised(report.usage_summary)


def _report_context(report: OutcomeReport, user) -> dict:
    return {
        "report": report,
        "usage": _usage(report),
        "documents": outcome_selectors.outcome_document_list(report=report),
        "timeline": report.timeline.all(),
        "actions": outcomes.actions(report, user),
        "overdue": report.state in outcomes.EDITABLE and report.due_on < timezone.localdate(),
    }


# --- the company ----------------------------------------------------------------------------


@login_required
def my_outcomes(request: SignedInRequest) -> HttpResponse:
    todo = request.GET.get("todo") == "1"
    reports = (
        outcome_selectors.outcome_report_todo_list(user=request.user)
        if todo
        else outcome_selectors.outcome_report_list(user=request.user)
    )
    return render(
        request,
        "vouchers/my_outcomes.html",
        {"page": page_of(request, reports), "todo": todo, "today": timezone.localdate()},
    )


@login_required
def my_outcome(request: SignedInRequest, pk: int) -> HttpResponse:
    report = outcome_selectors.outcome_report_get(user=request.user, pk=pk)
    editable = report.state in outcomes.EDITABLE
    initial = {name: getattr(report, name) for name in OUTCOME_FIELDS}
    form = OutcomeReportForm(request.POST or None, initial=initial)
    if request.method == "POST" and not editable:
        # A second tab, or the city decided meanwhile: nothing is saved, and it says so.
        messages.error(
            request,
            _("This report is %(state)s and can no longer be changed.")
            % {"state": report.get_state_display()},
        )
    elif request.method == "POST" and form.is_valid():
        try:
            services.outcome_report_update(report=report, actor=request.user, values=form.values())
            if request.POST.get("go") == "submit":
                services.outcome_report_submit(report=report, actor=request.user)
                messages.success(request, _("Report submitted to the city."))
            else:
                messages.success(request, _("Report saved."))
        except DomainError as error:
            apply_domain_error(form, error)
            messages.error(request, error.message)
        else:
            return redirect("vouchers:my_outcome", pk=report.pk)
    return render(
        request,
        "vouchers/my_outcome.html",
        {
            **_report_context(report, request.user),
            "form": form,
            "editable": editable,
            "document_form": OutcomeDocumentForm(),
        },
    )


@login_required
@require_POST
def my_outcome_document_add(request: SignedInRequest, pk: int) -> HttpResponse:
    report = outcome_selectors.outcome_report_get(user=request.user, pk=pk)
    form = OutcomeDocumentForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            services.outcome_document_add(
                report=report,
                actor=request.user,
                doc_type=form.cleaned_data["doc_type"],
                upload=form.cleaned_data["file"],
            )
        except DomainError as error:
            _tell(request, error)
        else:
            messages.success(request, _("Document uploaded."))
    else:
        for errors in form.errors.values():
            for text in errors:
                messages.error(request, str(text))
    return redirect("vouchers:my_outcome", pk=report.pk)


@login_required
def my_outcome_document(request: SignedInRequest, pk: int, document_id: int) -> FileResponse:
    report = outcome_selectors.outcome_report_get(user=request.user, pk=pk)
    return _download(outcome_selectors.outcome_document_get(report=report, pk=document_id))


@login_required
@require_POST
def my_outcome_document_remove(request: SignedInRequest, pk: int, document_id: int) -> HttpResponse:
    report = outcome_selectors.outcome_report_get(user=request.user, pk=pk)
    document = outcome_selectors.outcome_document_get(report=report, pk=document_id)
    try:
        services.outcome_document_remove(report=report, actor=request.user, document=document)
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, _("Document removed."))
    return redirect("vouchers:my_outcome", pk=report.pk)


# --- the city's staff ---------------------------------------------------------------------------


@staff_required()
def staff_outcomes(request: SignedInRequest, city_slug: str) -> HttpResponse:
    form = OutcomeQueueForm(request.GET or None, city=request.city)
    filters = form.cleaned_data if form.is_valid() else {}
    reports = outcome_selectors.outcome_report_list(
        city=request.city,
        state=filters.get("state") or "",
        show=filters.get("show") or "",
        program=filters.get("program"),
    )
    return render(
        request,
        "vouchers/staff_outcomes.html",
        {
            "city": request.city,
            "form": form,
            "page": page_of(request, reports),
            "today": timezone.localdate(),
        },
    )


@staff_required()
def staff_outcome(request: SignedInRequest, city_slug: str, pk: int) -> HttpResponse:
    report = outcome_selectors.outcome_report_get(city=request.city, pk=pk)
    return render(
        request,
        "vouchers/staff_outcome.html",
        {
            **_report_context(report, request.user),
            "city": request.city,
            "form": OutcomeDecisionForm(),
            "is_manager": has_role(request.user, request.city, Role.PROGRAM_MANAGER),
        },
    )


@staff_required(Role.PROGRAM_MANAGER)
@require_POST
def staff_outcome_action(
    request: SignedInRequest, city_slug: str, pk: int, action: str
) -> HttpResponse:
    report = outcome_selectors.outcome_report_get(city=request.city, pk=pk)
    form = OutcomeDecisionForm(request.POST)
    if action not in ("accept", "return") or not form.is_valid():
        messages.error(request, _("That step is not possible."))
        return redirect("vouchers:staff_outcome", city_slug=city_slug, pk=report.pk)
    comment = form.cleaned_data["comment"]
    try:
        if action == "accept":
            services.outcome_report_accept(report=report, actor=request.user, comment=comment)
            messages.success(request, _("Report accepted; the company is told."))
        else:
            services.outcome_report_return(report=report, actor=request.user, comment=comment)
            messages.success(request, _("Report returned to the company with your comments."))
    except DomainError as error:
        _tell(request, error)
        return render(
            request,
            "vouchers/staff_outcome.html",
            {
                **_report_context(report, request.user),
                "city": request.city,
                "form": form,
                "is_manager": True,
            },
            status=400,
        )
    return redirect("vouchers:staff_outcome", city_slug=city_slug, pk=report.pk)


@staff_required()
def staff_outcome_document(
    request: SignedInRequest, city_slug: str, pk: int, document_id: int
) -> FileResponse:
    report = outcome_selectors.outcome_report_get(city=request.city, pk=pk)
    document = outcome_selectors.outcome_document_get(report=report, pk=document_id)
    audit_record(
        action="outcome.document_download",
        city=request.city,
        actor=request.user,
        target=document,
        data={"report": report.pk, "name": document.original_name},
        ip=request.META.get("REMOTE_ADDR"),
    )
    return _download(document)
