"""Screens of the application workflow, for startups (/company/…, /<city>/programs/…) and
city staff (/<city>/staff/applications/…, /<city>/staff/programs/…).

Views parse input, call one service, render or redirect. Which actions a page offers
comes from `vouchers.workflow`, so the page never offers what the service would refuse.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from portal.audit import audit_record
from portal.errors import DomainError
from portal.forms import apply_domain_error
from portal.http import (
    CityRequest,
    SignedInRequest,
    page_of,
    parse_ids,
    posted_object_or_404,
)
from portal.models import Role
from portal.tenancy import has_role, roles_in_city, staff_required
from vouchers import letter_selectors, selectors, services, workflow
from vouchers.forms import (
    AmountForm,
    AnswerForm,
    ApproveForm,
    AssignForm,
    CompanyForm,
    CompanyProfileForm,
    ConflictForm,
    DocumentForm,
    InviteForm,
    ObjectionForm,
    PlanFormSet,
    ProjectForm,
    QuestionForm,
    QueueForm,
    ReasonForm,
    ResolveForm,
    ScoreForm,
    TieBreakForm,
)
from vouchers.models import Application, ApplicationState, Document, EligibilityResult


def _report(request: HttpRequest, error: DomainError) -> None:
    """A service's refusal as messages (for pages without a form): its message, then
    each field's that says more. Not the field's code ("reason:"), which is no word
    of the reader's language, and not the same sentence twice."""
    messages.error(request, error.message)
    for errors in error.fields.values():
        for message in errors:
            if str(message) != str(error.message):
                messages.error(request, message)


def _run(request: HttpRequest, form, action: Callable[[], object], done: str) -> bool:
    """Call a service for a valid form; put its refusal on the form. True when done."""
    try:
        action()
    except DomainError as error:
        apply_domain_error(form, error)
        messages.error(request, error.message)
        return False
    messages.success(request, done)
    return True


# --- public pages of a city ---------------------------------------------------------------------


def programs(request: CityRequest, city_slug: str) -> HttpResponse:
    return render(
        request,
        "vouchers/programs.html",
        {
            "city": request.city,
            "programs": selectors.program_list(city=request.city, only_open=True),
        },
    )


def program_detail(request: CityRequest, city_slug: str, slug: str) -> HttpResponse:
    program = selectors.program_get(city=request.city, slug=slug, only_open=True)
    companies = selectors.company_list(user=request.user)
    if request.method == "POST":
        if not request.user.is_authenticated:
            return redirect(f"/accounts/login/?next={request.path}")
        company = posted_object_or_404(companies, request.POST.get("company"))
        try:
            application = services.application_create(
                program=program, company=company, actor=request.user
            )
        except DomainError as error:
            messages.error(request, error.message)
        else:
            return redirect("vouchers:application", pk=application.pk)
    return render(
        request,
        "vouchers/program_detail.html",
        {"city": request.city, "program": program, "companies": companies},
    )


def notice(request: CityRequest, city_slug: str, slug: str) -> HttpResponse:
    """The public notice (公示) of a program: recommended applications and objections."""
    program = selectors.program_get(city=request.city, slug=slug)
    form = ObjectionForm(request.POST or None)
    if request.method == "POST":
        if not request.user.is_authenticated:
            return redirect(f"/accounts/login/?next={request.path}")
        user = request.user  # signed in: narrowed for the lambda below
        application = posted_object_or_404(
            selectors.application_notice_list(program=program), request.POST.get("application")
        )
        if form.is_valid() and _run(
            request,
            form,
            lambda: services.objection_raise(
                application=application, actor=user, text=form.cleaned_data["text"]
            ),
            _("Your objection was recorded; the city will resolve it before any approval."),
        ):
            return redirect(request.path)
    return render(
        request,
        "vouchers/notice.html",
        {
            "city": request.city,
            "program": program,
            "applications": selectors.application_notice_list(program=program),
            "form": form,
        },
    )


# --- the company's side --------------------------------------------------------------------------


@login_required
def company_home(request: SignedInRequest) -> HttpResponse:
    form = CompanyForm(request.POST or None)
    if (
        request.method == "POST"
        and form.is_valid()
        and _run(
            request,
            form,
            lambda: services.company_create(actor=request.user, **form.cleaned_data),
            _("Company registered."),
        )
    ):
        return redirect("vouchers:company_home")
    return render(
        request,
        "vouchers/company_home.html",
        {
            "companies": selectors.company_list(user=request.user),
            "applications": selectors.application_list(
                user=request.user, state=request.GET.get("state", "")
            )[:50],
            "state": request.GET.get("state", ""),
            "vouchers": selectors.voucher_list(user=request.user)[:20],
            "form": form,
        },
    )


@login_required
def company_detail(request: SignedInRequest, pk: int) -> HttpResponse:
    company = selectors.company_get(user=request.user, pk=pk)
    editing = request.method == "POST" and request.POST.get("form") == "profile"
    profile = CompanyProfileForm(
        request.POST if editing else None,
        initial={f: getattr(company, f) for f in services.COMPANY_PROFILE_FIELDS},
    )
    if (
        editing
        and profile.is_valid()
        and _run(
            request,
            profile,
            lambda: services.company_update(
                company=company, actor=request.user, values=profile.cleaned_data
            ),
            _("Company profile saved."),
        )
    ):
        return redirect("vouchers:company", pk=company.pk)
    form = InviteForm(request.POST if request.method == "POST" and not editing else None)
    if (
        request.method == "POST"
        and not editing
        and form.is_valid()
        and _run(
            request,
            form,
            lambda: services.company_invite(
                company=company, actor=request.user, email=form.cleaned_data["email"]
            ),
            _("Invitation sent."),
        )
    ):
        return redirect("vouchers:company", pk=company.pk)
    members = list(selectors.company_member_list(company=company))
    return render(
        request,
        "vouchers/company_detail.html",
        {
            "company": company,
            "members": members,
            "is_owner": any(m.is_owner and m.user_id == request.user.pk for m in members),
            "form": form,
            "profile": profile,
        },
    )


@login_required
def invitation_accept(request: SignedInRequest, token: str) -> HttpResponse:
    if request.method == "POST":
        try:
            company = services.invitation_accept(token=token, actor=request.user)
        except DomainError:
            raise Http404 from None
        messages.success(request, _("You joined %(company)s.") % {"company": company.legal_name})
        return redirect("vouchers:company", pk=company.pk)
    return render(request, "vouchers/invitation.html", {"token": token})


def _my_application(request: SignedInRequest, pk: int) -> Application:
    return selectors.application_get(user=request.user, pk=pk)


STEPS = ("project", "plan", "amount", "documents", "review")


@login_required
def application(request: SignedInRequest, pk: int) -> HttpResponse:
    """The multi-step application form (drafts are saved at every step), and afterwards
    the application's status, timeline and the company's actions."""
    app = _my_application(request, pk)
    step = request.GET.get("step") or ("project" if app.state in workflow.EDITABLE else "review")
    if step not in STEPS:
        step = "review"
    editable = app.state in workflow.EDITABLE
    forms: dict = {}
    if step == "project":
        forms["form"] = ProjectForm(request.POST or None, initial=_values(app, ProjectForm))
    elif step == "plan":
        initial = list(selectors.compute_plan_row_list(application=app))
        forms["formset"] = PlanFormSet(request.POST or None, initial=initial, prefix="plan")
    elif step == "amount":
        forms["form"] = AmountForm(request.POST or None, initial=_values(app, AmountForm))
    elif step == "documents":
        forms["form"] = DocumentForm(
            request.POST or None, request.FILES or None, types=app.program.required_documents
        )
    saving = request.method == "POST" and editable and step != "review"
    if saving and _save_step(request, app, step, forms):
        after = request.POST.get("go", "stay")
        nxt = STEPS[min(STEPS.index(step) + 1, len(STEPS) - 1)] if after == "next" else step
        return redirect(f"{request.path}?step={nxt}")
    return render(
        request,
        "vouchers/application.html",
        {
            "app": app,
            "step": step,
            "steps": STEPS,
            "editable": editable,
            "problems": workflow.application_problems(app) if editable else {},
            "actions": workflow.application_actions(app, request.user),
            "notes": workflow.action_notes(app, request.user),
            "letters": letter_selectors.letter_list(application=app),
            "answer_form": AnswerForm(),
            **forms,
        },
    )


def _values(app: Application, form_class) -> dict:
    return {name: getattr(app, name) for name in form_class.base_fields}


def _save_step(request: SignedInRequest, app: Application, step: str, forms: dict) -> bool:
    if step == "plan":
        formset = forms["formset"]
        if not formset.is_valid():
            return False
        rows = [
            f.cleaned_data for f in formset if f.cleaned_data and not f.cleaned_data.get("DELETE")
        ]
        return _run(
            request,
            formset.forms[0] if formset.forms else ProjectForm(),
            lambda: services.application_update(
                application=app, actor=request.user, values={}, plan=rows
            ),
            _("Draft saved."),
        )
    form = forms["form"]
    if not form.is_valid():
        return False
    if step == "documents":
        return _run(
            request,
            form,
            lambda: services.document_add(
                application=app,
                actor=request.user,
                doc_type=form.cleaned_data["doc_type"],
                upload=form.cleaned_data["file"],
            ),
            _("Document uploaded."),
        )
    return _run(
        request,
        form,
        lambda: services.application_update(
            application=app, actor=request.user, values=form.cleaned_data
        ),
        _("Draft saved."),
    )


@login_required
@require_POST
def application_action(request: SignedInRequest, pk: int, action: str) -> HttpResponse:
    app = _my_application(request, pk)
    steps = {
        "submit": lambda: services.application_submit(application=app, actor=request.user),
        "withdraw": lambda: services.application_withdraw(application=app, actor=request.user),
        "answer_info": lambda: services.application_answer_info(
            application=app, actor=request.user, answer=request.POST.get("answer", "")
        ),
    }
    if action not in steps:
        raise Http404
    if action == "withdraw" and request.POST.get("confirm") != "yes":
        messages.error(request, _("Tick the confirmation to withdraw."))
        return redirect("vouchers:application", pk=app.pk)
    try:
        steps[action]()
    except DomainError as error:
        _report(request, error)
    else:
        messages.success(request, _("Done."))
    return redirect("vouchers:application", pk=app.pk)


def _download(document: Document) -> FileResponse:
    return FileResponse(
        document.file.open("rb"),
        as_attachment=True,
        filename=document.original_name,
        content_type=document.content_type,
    )


@login_required
def my_document(request: SignedInRequest, pk: int, document_id: int) -> FileResponse:
    app = _my_application(request, pk)
    return _download(selectors.document_get(application=app, pk=document_id))


# --- city staff -------------------------------------------------------------------------


@staff_required()
def queue(request: SignedInRequest, city_slug: str) -> HttpResponse:
    reviewers = selectors.reviewer_list(city=request.city)
    form = QueueForm(request.GET or None, city=request.city, reviewers=reviewers)
    filters = form.cleaned_data if form.is_valid() else {}
    can_assign = has_role(request.user, request.city, Role.PROGRAM_MANAGER)
    if request.method == "POST":
        if not can_assign:
            raise Http404
        reviewer = posted_object_or_404(reviewers, request.POST.get("reviewer"))
        ids = parse_ids(request.POST.getlist("applications"))
        done = 0
        for app in selectors.application_list(city=request.city, pks=ids):
            try:
                services.review_assign(application=app, actor=request.user, reviewer=reviewer)
                done += 1
            except DomainError as error:
                messages.error(request, f"#{app.pk}: {error.message}")
        messages.success(request, _("%(n)s application(s) assigned.") % {"n": done})
        return redirect(request.get_full_path())
    return render(
        request,
        "vouchers/staff_queue.html",
        {
            "city": request.city,
            "form": form,
            "page": page_of(
                request,
                selectors.application_queue_list(
                    city=request.city, user=request.user, filters=filters
                ),
                count=selectors.application_queue_count(city=request.city, filters=filters),
            ),
            "reviewers": reviewers,
            "can_assign": can_assign,
            # Per page, not per row: the labels in the reader's language, and the rows'
            # address up to the application's number.
            "state_labels": {k: str(v) for k, v in ApplicationState.choices},
            "eligibility_labels": {k: str(v) for k, v in EligibilityResult.choices},
            "row_url": reverse("vouchers:staff_application", args=[city_slug, 0]).removesuffix(
                "0/"
            ),
        },
    )


def _city_application(request: CityRequest, pk: int) -> Application:
    return selectors.application_get(city=request.city, pk=pk)


@staff_required()
def staff_application(request: SignedInRequest, city_slug: str, pk: int) -> HttpResponse:
    app = _city_application(request, pk)
    reviews = list(selectors.review_list(application=app, user=request.user))
    hidden = workflow.reviews_hidden_reason(app, request.user)
    return render(
        request,
        "vouchers/staff_application.html",
        {
            "city": request.city,
            "app": app,
            "actions": workflow.application_actions(app, request.user),
            "notes": workflow.action_notes(app, request.user),
            "letters": letter_selectors.letter_list(application=app),
            "roles": roles_in_city(request.user, request.city),
            "reviews": reviews,
            "reviews_hidden": hidden,
            "own_review": next((r for r in reviews if r.reviewer_id == request.user.pk), None),
            "conflict_form": ConflictForm(),
            "score_form": ScoreForm(rubric=app.program.rubric),
            "assign_form": AssignForm(reviewers=selectors.reviewer_list(city=request.city)),
            "approve_form": ApproveForm(initial={"amount": app.requested_amount}),
            "reason_form": ReasonForm(),
            "tie_form": TieBreakForm(),
            "question_form": QuestionForm(),
            "resolve_form": ResolveForm(),
            "objections": selectors.objection_list(application=app),
        },
    )


@staff_required()
@require_POST
def staff_action(request: SignedInRequest, city_slug: str, pk: int, action: str) -> HttpResponse:
    app = _city_application(request, pk)
    post = request.POST
    user = request.user
    forms = {
        "pass_screening": None,
        "start_screening": None,
        "fail_screening": ReasonForm(post),
        "reject": ReasonForm(post),
        "break_tie": TieBreakForm(post),
        "request_info": QuestionForm(post),
        "approve": ApproveForm(post),
        "assign": AssignForm(post, reviewers=selectors.reviewer_list(city=request.city)),
        "declare": ConflictForm(post),
        "score": ScoreForm(post, rubric=app.program.rubric),
        "resolve": ResolveForm(post),
    }
    if action not in forms:
        raise Http404
    form = forms[action]
    if form is not None and not form.is_valid():
        for field, errors in form.errors.items():
            for message in errors:
                messages.error(
                    request, f"{form.fields[field].label if field in form.fields else ''} {message}"
                )
        return redirect("vouchers:staff_application", city_slug=city_slug, pk=app.pk)
    data = form.cleaned_data if form is not None else {}
    steps = {
        "start_screening": lambda: services.application_start_screening(
            application=app, actor=user
        ),
        "pass_screening": lambda: services.application_pass_screening(application=app, actor=user),
        "fail_screening": lambda: services.application_fail_screening(
            application=app, actor=user, reason=data["reason"]
        ),
        "reject": lambda: services.application_reject(
            application=app, actor=user, reason=data["reason"]
        ),
        "break_tie": lambda: services.application_break_tie(
            application=app, actor=user, recommend=data["recommend"], reason=data["reason"]
        ),
        "request_info": lambda: services.application_request_info(
            application=app, actor=user, question=data["question"]
        ),
        "approve": lambda: services.application_approve(
            application=app, actor=user, amount=data["amount"], reason=data["reason"]
        ),
        "assign": lambda: services.review_assign(
            application=app, actor=user, reviewer=data["reviewer"]
        ),
        "declare": lambda: services.review_declare(
            application=app, actor=user, conflict=data["conflict"], note=data["note"]
        ),
        "score": lambda: services.review_submit(
            application=app,
            actor=user,
            scores=cast(ScoreForm, form).scores(),
            comment=data["comment"],
            recommend=data["recommend"],
        ),
        "resolve": lambda: services.objection_resolve(
            objection=posted_object_or_404(
                selectors.objection_list(application=app), post.get("objection")
            ),
            actor=user,
            resolution=data["resolution"],
        ),
    }
    try:
        steps[action]()
    except DomainError as error:
        _report(request, error)
    else:
        messages.success(request, _("Done."))
    return redirect("vouchers:staff_application", city_slug=city_slug, pk=app.pk)


@staff_required()
def staff_document(
    request: SignedInRequest, city_slug: str, pk: int, document_id: int
) -> FileResponse:
    app = _city_application(request, pk)
    document = selectors.document_get(application=app, pk=document_id)
    audit_record(
        action="document.download",
        city=request.city,
        actor=request.user,
        target=document,
        data={"application": app.pk, "name": document.original_name},
        ip=request.META.get("REMOTE_ADDR"),
    )
    return _download(document)


@staff_required()
def staff_programs(request: SignedInRequest, city_slug: str) -> HttpResponse:
    return render(
        request,
        "vouchers/staff_programs.html",
        {
            "city": request.city,
            "programs": selectors.program_list(city=request.city),
            "can_edit": has_role(request.user, request.city, Role.PROGRAM_MANAGER),
        },
    )


@staff_required()
def staff_ranking(request: SignedInRequest, city_slug: str, slug: str) -> HttpResponse:
    program = selectors.program_get(city=request.city, slug=slug)
    page = page_of(request, selectors.application_ranking_list(program=program, user=request.user))
    most = program.rubric_max_total
    for app in page:
        app.share = app.average * 100 / most if most else None
    return render(
        request,
        "vouchers/staff_ranking.html",
        {
            "city": request.city,
            "program": program,
            "page": page,
            "unscored": selectors.application_unscored_list(program=program),
            "hidden": selectors.application_ranking_hidden_count(
                program=program, user=request.user
            ),
        },
    )
