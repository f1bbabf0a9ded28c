"""Writes of the vouchers app: companies, programs and the application workflow.

Every workflow step is one service that checks the actor's party (company member or
staff role of the application's city) and the state against `vouchers.workflow`, locks
the application row, runs in a transaction, records the timeline and an audit event,
and enqueues notifications after commit. An illegal step raises `DomainError` and
changes nothing.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from portal.audit import audit_record
from portal.errors import DomainError
from portal.locks import retry_on_deadlock
from portal.models import City, Role, User
from portal.tenancy import has_role, roles_in_city
from vouchers import eligibility, workflow
from vouchers.credit_code import credit_code_problem
from vouchers.ledger import voucher_issue
from vouchers.models import (
    Application,
    ApplicationState,
    Company,
    CompanyInvitation,
    CompanyMember,
    ComputePlanRow,
    Document,
    EligibilityOutcome,
    InfoRequest,
    Objection,
    Program,
    ProgramStatus,
    Review,
    StateChange,
    Voucher,
    document_type_label,
)

MAX_DOCUMENT_BYTES = 20 * 1024 * 1024
# Floods: documents per application, objections per person and application.
MAX_DOCUMENTS_PER_APPLICATION = 30
MAX_OBJECTIONS_PER_PERSON = 3
# Content, not the name, decides the type.
_MAGIC = {
    b"%PDF-": "application/pdf",
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
}


def _invalid(field: str, message: str) -> DomainError:
    return DomainError(message, code="invalid", fields={field: [message]})


# --- companies ------------------------------------------------------------------------------


def credit_code_message(code: str) -> str | None:
    problem = credit_code_problem(code)
    return {
        None: None,
        "length": _("A unified social credit code has 18 characters."),
        "characters": _(
            "Only digits and the capital letters A-H, J-N, P-R, T, U, W-Y are used "
            "(no I, O, S, V or Z)."
        ),
        "check": _(
            "The last character does not match the first 17 (GB 32100-2015 check); "
            "please check the code on the business licence."
        ),
    }[problem]


def company_create(*, actor: User, legal_name: str, credit_code: str, **fields: Any) -> Company:
    code = (credit_code or "").strip().upper()
    message = credit_code_message(code)
    if message:
        raise _invalid("credit_code", message)
    if not (legal_name or "").strip():
        raise _invalid("legal_name", _("Give the company's legal name."))
    try:
        with transaction.atomic():
            company = Company.objects.create(
                legal_name=legal_name.strip(), credit_code=code, **fields
            )
            CompanyMember.objects.create(company=company, user=actor, is_owner=True)
            audit_record(
                action="company.create",
                city=company.registered_city,
                actor=actor,
                target=company,
                data={"credit_code": code},
            )
    except IntegrityError as error:
        raise _invalid(
            "credit_code", _("A company with this credit code is already registered.")
        ) from error
    return company


COMPANY_PROFILE_FIELDS = (
    "legal_name",
    "registered_city",
    "registered_address",
    "founded_on",
    "headcount",
    "revenue_last_year",
)


def company_update(*, company: Company, actor: User, values: dict) -> Company:
    """Members keep the profile current (eligibility reads it at each submission). The
    credit code identifies the company and never changes."""
    if not (values.get("legal_name") or company.legal_name or "").strip():
        raise _invalid("legal_name", _("Give the company's legal name."))
    with transaction.atomic():
        company = Company.objects.select_for_update().get(pk=company.pk)
        if not CompanyMember.objects.filter(company=company, user=actor).exists():
            raise DomainError(_("Not found."), code="not_found")
        changed = {}
        for field in COMPANY_PROFILE_FIELDS:
            if field in values and getattr(company, field) != values[field]:
                setattr(company, field, values[field])
                changed[field] = str(values[field])
        if changed:
            company.legal_name = company.legal_name.strip()
            company.save()
            audit_record(
                action="company.update",
                city=company.registered_city,
                actor=actor,
                target=company,
                data=changed,
            )
    return company


def company_invite(*, company: Company, actor: User, email: str) -> CompanyInvitation:
    if not CompanyMember.objects.filter(company=company, user=actor, is_owner=True).exists():
        raise DomainError(_("Only the company's owner may invite members."), code="forbidden")
    email = (email or "").strip().lower()
    if "@" not in email:
        raise _invalid("email", _("Give an e-mail address."))
    invitation = CompanyInvitation.objects.create(
        company=company, email=email, token=secrets.token_urlsafe(32), invited_by=actor
    )
    audit_record(action="company.invite", actor=actor, target=company, data={"email": email})
    from vouchers.tasks import invitation_send

    transaction.on_commit(lambda: invitation_send.delay(invitation.pk))
    return invitation


def invitation_accept(*, token: str, user: User) -> Company:
    with transaction.atomic():
        invitation = (
            CompanyInvitation.objects.select_for_update()
            .filter(token=token, accepted_at__isnull=True)
            .first()
        )
        if invitation is None or invitation.email != user.email.lower():
            raise DomainError(_("This invitation is not valid for your account."), code="not_found")
        CompanyMember.objects.get_or_create(company=invitation.company, user=user)
        invitation.accepted_at = timezone.now()
        invitation.save(update_fields=["accepted_at"])
        audit_record(action="company.join", actor=user, target=invitation.company)
    return invitation.company


# --- programs --------------------------------------------------------------------------------

PROGRAM_FIELDS = [
    "slug",
    "name_zh",
    "name_en",
    "description_zh",
    "description_en",
    "status",
    "opens_at",
    "closes_at",
    "budget",
    "award_min",
    "award_max",
    "rate_domestic",
    "rate_other",
    "company_yearly_cap",
    "validity_months",
    "grace_days",
    "reviews_required",
    "rubric",
    "notice_days",
    "required_documents",
    "eligibility_rules",
    "hard_fail_rejects",
]


# Bounds of a program's settings: what a real rubric or document list needs, no more.
RUBRIC_MAX_CRITERIA = 30
RUBRIC_MAX_WEIGHT = 100
RUBRIC_MAX_POINTS = 1000
MAX_REQUIRED_DOCUMENTS = 30


def rubric_problem(rubric: object) -> str | None:
    if not isinstance(rubric, list):
        return _("The rubric is a list of criteria.")
    if len(rubric) > RUBRIC_MAX_CRITERIA:
        return _("At most %(n)s criteria.") % {"n": RUBRIC_MAX_CRITERIA}
    for criterion in rubric:
        if (
            not isinstance(criterion, dict)
            or not isinstance(criterion.get("name", ""), str)
            or not criterion.get("name", "").strip()
            or len(criterion["name"]) > 100
            or isinstance(criterion.get("weight"), bool)
            or not isinstance(criterion.get("weight"), int | float)
            or isinstance(criterion.get("max"), bool)
            or not isinstance(criterion.get("max"), int)
            or not 0 < criterion["weight"] <= RUBRIC_MAX_WEIGHT
            or not 0 < criterion["max"] <= RUBRIC_MAX_POINTS
        ):
            return _(
                "Each criterion needs a name (at most 100 characters), a weight above 0 and "
                "at most %(weight)s, and a maximum of 1 to %(points)s points, "
                'e.g. {"name": "Team", "weight": 1, "max": 10}.'
            ) % {"weight": RUBRIC_MAX_WEIGHT, "points": RUBRIC_MAX_POINTS}
    names = [str(c["name"]).strip() for c in rubric]
    if len(set(names)) != len(names):
        # The scoring form has one field per criterion name.
        return _("Each criterion needs a name of its own.")
    return None


def program_validate(values: dict) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    budget, low, high = values.get("budget"), values.get("award_min"), values.get("award_max")
    if None not in (budget, low, high):
        if low > high:
            add("award_min", _("The minimum award cannot exceed the maximum."))
        if high > budget:
            add("award_max", _("The maximum award cannot exceed the budget."))
    for field in ("rate_domestic", "rate_other"):
        rate = values.get(field)
        if rate is not None and not Decimal("0") <= rate <= Decimal("1"):
            add(field, _("A rate is between 0 and 1, e.g. 0.30 for 30%."))
    opens, closes = values.get("opens_at"), values.get("closes_at")
    if opens and closes and closes <= opens:
        add("closes_at", _("The program must close after it opens."))
    if (values.get("reviews_required") or 0) > 0:
        problem = rubric_problem(values.get("rubric") or [])
        if problem or not values.get("rubric"):
            add("rubric", problem or _("Programs with reviews need a scoring rubric."))
    problem = eligibility.rules_problem(values.get("eligibility_rules") or [])
    if problem:
        add("eligibility_rules", problem)
    documents = values.get("required_documents") or []
    if not isinstance(documents, list) or not all(
        isinstance(d, str) and d.strip() and len(d) <= 60 for d in documents
    ):
        add(
            "required_documents",
            _("A list of document types is expected, each at most 60 characters."),
        )
    elif len(documents) > MAX_REQUIRED_DOCUMENTS:
        add(
            "required_documents", _("At most %(n)s document types.") % {"n": MAX_REQUIRED_DOCUMENTS}
        )
    return errors


def program_save(
    *, city: City, actor: User | None, values: dict, program: Program | None = None
) -> Program:
    """Create or change one of the city's programs (program managers only)."""
    if actor is not None and not has_role(actor, city, Role.PROGRAM_MANAGER):
        raise DomainError(_("Only the city's program managers edit programs."), code="forbidden")
    errors = program_validate(values)
    if errors:
        raise DomainError(_("Please correct the fields below."), fields=errors)
    with transaction.atomic():
        if program is None:
            program = Program(city=city)
        else:
            program = Program.objects.select_for_update().get(pk=program.pk, city=city)
            if values.get("budget") is not None and values["budget"] < program.allocated:
                raise _invalid("budget", _("The budget cannot be below what is already allocated."))
        for field in PROGRAM_FIELDS:
            if field in values:
                setattr(program, field, values[field])
        try:
            with transaction.atomic():
                program.save()
        except IntegrityError as error:
            raise _invalid(
                "slug", _("Another program of this city uses this short name.")
            ) from error
        audit_record(
            action="program.save",
            city=city,
            actor=actor,
            target=program,
            data={k: str(v) for k, v in values.items() if k in PROGRAM_FIELDS},
        )
    return program


# --- applications ----------------------------------------------------------------------------


def parties(application: Application, user: User) -> set[str]:
    """Who the user is for this application: a member of its company, staff roles."""
    found: set[str] = set(roles_in_city(user, application.city))
    if user.is_authenticated and application.company.members.filter(pk=user.pk).exists():
        found.add(workflow.MEMBER)
    return found


def application_actions(application: Application, user: User) -> list[str]:
    """What the user may do now, for the templates: the transition table's actions for
    their parties, less staff steps on their own company's application and approving
    an application they reviewed (separation of duties, which the services enforce)."""
    found = parties(application, user)
    actions = workflow.allowed_actions(application.state, found)
    if workflow.MEMBER in found:
        actions = [a for a in actions if workflow.MEMBER in workflow.parties_of(a)]
    if "approve" in actions and (
        application.reviews.filter(reviewer=user).exists() or _notice_blocks(application)
    ):
        actions.remove("approve")
    return actions


def _notice_blocks(application: Application) -> str | None:
    """Why the public notice still stands in the way of approval, or None."""
    if application.state != ApplicationState.IN_NOTICE:
        return None
    if application.notice_ends_at and timezone.now() < application.notice_ends_at:
        return _("The public notice has not ended yet.")
    if application.objections.filter(resolved_at__isnull=True).exists():
        return _("Resolve the open objections first.")
    return None


def _step(
    application: Application,
    *,
    action: str,
    actor: User | None,
    target: str,
    note: str = "",
    notify: str = "",
) -> Application:
    """Move a locked application along the table; the caller has checked the rules."""
    transition = workflow.TRANSITIONS[action]
    if application.state not in transition.sources or target not in transition.targets:
        raise DomainError(
            _("This application is %(state)s; that step is not possible now.")
            % {"state": application.get_state_display()},
            code="conflict",
        )
    before = application.state
    application.state = target
    application.save()
    change = StateChange.objects.create(
        application=application,
        from_state=before,
        to_state=target,
        actor_label=actor.email if actor is not None else "system",
        note=note[:2000],
    )
    audit_record(
        action=f"application.{action}",
        city=application.city,
        actor=actor,
        target=application,
        data={"from": before, "to": target, "note": note[:500]},
    )
    if notify:
        from vouchers.tasks import application_notify

        # The change's id, not just the application's: the worker may run after a later
        # step has replaced the application's reason or question.
        transaction.on_commit(lambda: application_notify.delay(application.pk, notify, change.pk))
    return application


def _locked(application: Application) -> Application:
    return (
        Application.objects.select_for_update(of=("self",))
        .select_related("city", "program", "company")
        .get(pk=application.pk)
    )


MEMBER_STAFF_MESSAGE = gettext_noop(
    "You belong to the applicant company; another staff member must act."
)


def _require(application: Application, actor: User, action: str) -> None:
    who = parties(application, actor)
    if not who:
        raise DomainError(_("Not found."), code="not_found")
    if workflow.MEMBER in who and workflow.MEMBER not in workflow.parties_of(action):
        # Staff of the city who also belong to the applicant company take no staff step
        # on its application: screening, reviewing or deciding one's own case.
        raise DomainError(_(MEMBER_STAFF_MESSAGE), code="forbidden")
    if not workflow.allowed(action, application.state, who):
        if workflow.TRANSITIONS.get(action) and not (workflow.TRANSITIONS[action].who & who):
            raise DomainError(_("Your role does not allow this step."), code="forbidden")
        raise DomainError(
            _("This application is %(state)s; that step is not possible now.")
            % {"state": application.get_state_display()},
            code="conflict",
        )


def application_create(*, program: Program, company: Company, actor: User) -> Application:
    if not company.members.filter(pk=actor.pk).exists():
        raise DomainError(_("Only members of the company may apply for it."), code="forbidden")
    now = timezone.now()
    if (
        program.status != ProgramStatus.OPEN
        or (program.opens_at and now < program.opens_at)
        or (program.closes_at and now > program.closes_at)
    ):
        raise DomainError(_("This program is not open for applications."), code="conflict")
    with transaction.atomic():
        application = Application.objects.create(
            city=program.city, program=program, company=company, created_by=actor
        )
        StateChange.objects.create(
            application=application, from_state="", to_state="draft", actor_label=actor.email
        )
        audit_record(
            action="application.create", city=program.city, actor=actor, target=application
        )
    return application


EDITABLE = {ApplicationState.DRAFT, ApplicationState.INFO_REQUESTED}


def application_update(
    *, application: Application, actor: User, values: dict, plan: list[dict] | None = None
) -> Application:
    """Save a draft (any subset of fields), or the company's answer to a request."""
    with transaction.atomic():
        application = _locked(application)
        if workflow.MEMBER not in parties(application, actor):
            raise DomainError(_("Not found."), code="not_found")
        if application.state not in EDITABLE:
            raise DomainError(_("The application can no longer be edited."), code="conflict")
        for field in (
            "title",
            "summary",
            "model_plans",
            "requested_amount",
            "declares_no_related_party",
            "declares_no_other_subsidy",
            "declares_true_information",
        ):
            if field in values:
                setattr(application, field, values[field])
        application.save()
        if plan is not None:
            application.compute_plan.all().delete()
            ComputePlanRow.objects.bulk_create(
                ComputePlanRow(application=application, **row) for row in plan
            )
    return application


def sniff_content_type(head: bytes) -> str | None:
    for magic, content_type in _MAGIC.items():
        if head.startswith(magic):
            return content_type
    return None


def document_add(*, application: Application, actor: User, doc_type: str, upload) -> Document:
    """Attach a PDF, PNG or JPEG (judged by content) of at most 20 MB."""
    if upload.size > MAX_DOCUMENT_BYTES:
        raise _invalid("file", _("A document may be at most 20 MB."))
    head = upload.read(16)
    upload.seek(0)
    content_type = sniff_content_type(head)
    if content_type is None:
        raise _invalid(
            "file", _("Only PDF, PNG and JPEG files are accepted (judged by their content).")
        )
    doc_type = (doc_type or "").strip()[:60]
    if not doc_type:
        raise _invalid("doc_type", _("Choose the document type."))
    with transaction.atomic():
        application = _locked(application)
        if workflow.MEMBER not in parties(application, actor):
            raise DomainError(_("Not found."), code="not_found")
        if application.state not in EDITABLE:
            raise DomainError(_("Documents can no longer be added."), code="conflict")
        if application.documents.count() >= MAX_DOCUMENTS_PER_APPLICATION:
            raise _invalid(
                "file",
                _("An application takes at most %(n)s documents.")
                % {"n": MAX_DOCUMENTS_PER_APPLICATION},
            )
        document = Document.objects.create(
            application=application,
            doc_type=doc_type,
            file=upload,
            original_name=str(upload.name)[:200],
            content_type=content_type,
            size=upload.size,
            uploaded_by=actor,
        )
        audit_record(
            action="document.add",
            city=application.city,
            actor=actor,
            target=document,
            data={
                "application": application.pk,
                "doc_type": doc_type,
                "content_type": content_type,
                "size": document.size,
            },
        )
    return document


def application_problems(application: Application) -> dict[str, list[str]]:
    """What must be filled in before the application can be submitted."""
    program = application.program
    errors: dict[str, list[str]] = {}
    for field, message in (
        ("title", _("Give the project a title.")),
        ("summary", _("Summarise the project.")),
        ("model_plans", _("Describe the models you plan to train or serve.")),
    ):
        if not getattr(application, field).strip():
            errors[field] = [message]
    amount = application.requested_amount
    if amount is None:
        errors["requested_amount"] = [_("Give the amount you request.")]
    elif not program.award_min <= amount <= program.award_max:
        errors["requested_amount"] = [
            _("The program awards between ¥%(low)s and ¥%(high)s.")
            % {"low": f"{program.award_min:,.2f}", "high": f"{program.award_max:,.2f}"}
        ]
    if not application.compute_plan.exists():
        errors["compute_plan"] = [_("Add at least one row to the compute plan.")]
    if not (
        application.declares_no_related_party
        and application.declares_no_other_subsidy
        and application.declares_true_information
    ):
        errors["declarations"] = [_("All three declarations are required.")]
    present = set(application.documents.values_list("doc_type", flat=True))
    missing = [t for t in program.required_documents or [] if t not in present]
    if missing:
        names = ", ".join(document_type_label(t) for t in missing)
        errors["documents"] = [_("Missing documents: %(types)s.") % {"types": names}]
    return errors


def application_submit(*, application: Application, actor: User) -> Application:
    with transaction.atomic():
        application = _locked(application)
        _require(application, actor, "submit")
        problems = application_problems(application)
        if problems:
            raise DomainError(_("The application is not complete yet."), fields=problems)
        outcomes = eligibility.evaluate(application)
        application.eligibility_outcomes.all().delete()
        EligibilityOutcome.objects.bulk_create(
            EligibilityOutcome(application=application, **o.__dict__) for o in outcomes
        )
        application.eligibility = eligibility.summary(outcomes)
        application.submitted_at = timezone.now()
        failed = application.eligibility == eligibility.FAIL
        if failed and application.program.hard_fail_rejects:
            reasons = "; ".join(o.message_en for o in outcomes if o.outcome == eligibility.FAIL)
            application.decision_reason = reasons
            return _step(
                application,
                action="submit",
                actor=actor,
                target=ApplicationState.NOT_RECOMMENDED,
                note=reasons,
                notify="not_recommended",
            )
        return _step(
            application,
            action="submit",
            actor=actor,
            target=ApplicationState.SUBMITTED,
            notify="submitted",
        )


def application_withdraw(*, application: Application, actor: User) -> Application:
    with transaction.atomic():
        application = _locked(application)
        _require(application, actor, "withdraw")
        return _step(application, action="withdraw", actor=actor, target=ApplicationState.WITHDRAWN)


def application_start_screening(*, application: Application, actor: User) -> Application:
    with transaction.atomic():
        application = _locked(application)
        _require(application, actor, "start_screening")
        return _step(
            application, action="start_screening", actor=actor, target=ApplicationState.SCREENING
        )


def _recommend(
    application: Application, *, action: str, actor: User | None, note: str
) -> Application:
    """Recommended, and straight into public notice when the program has one."""
    days = application.program.notice_days
    if days > 0:
        application.notice_ends_at = timezone.now() + timezone.timedelta(days=days)
        return _step(
            application,
            action=action,
            actor=actor,
            target=ApplicationState.IN_NOTICE,
            note=note,
            notify="in_notice",
        )
    return _step(
        application,
        action=action,
        actor=actor,
        target=ApplicationState.RECOMMENDED,
        note=note,
        notify="recommended",
    )


def application_pass_screening(
    *, application: Application, actor: User, note: str = ""
) -> Application:
    with transaction.atomic():
        application = _locked(application)
        _require(application, actor, "pass_screening")
        if application.program.reviews_required > 0:
            return _step(
                application,
                action="pass_screening",
                actor=actor,
                target=ApplicationState.IN_REVIEW,
                note=note,
            )
        return _recommend(application, action="pass_screening", actor=actor, note=note)


def application_fail_screening(
    *, application: Application, actor: User, reason: str
) -> Application:
    reason = (reason or "").strip()
    if not reason:
        raise _invalid("reason", _("Give a reason."))
    with transaction.atomic():
        application = _locked(application)
        _require(application, actor, "fail_screening")
        application.decision_reason = reason
        return _step(
            application,
            action="fail_screening",
            actor=actor,
            target=ApplicationState.NOT_RECOMMENDED,
            note=reason,
            notify="not_recommended",
        )


def application_request_info(
    *, application: Application, actor: User, question: str
) -> InfoRequest:
    question = (question or "").strip()
    if not question:
        raise _invalid("question", _("Write what you need to know."))
    with transaction.atomic():
        application = _locked(application)
        _require(application, actor, "request_info")
        request = InfoRequest.objects.create(
            application=application, asked_by=actor, question=question
        )
        application.resume_state = application.state
        _step(
            application,
            action="request_info",
            actor=actor,
            target=ApplicationState.INFO_REQUESTED,
            note=question,
            notify="info_requested",
        )
    return request


def application_answer_info(*, application: Application, actor: User, answer: str) -> Application:
    answer = (answer or "").strip()
    if not answer:
        raise _invalid("answer", _("Write your answer."))
    with transaction.atomic():
        application = _locked(application)
        _require(application, actor, "answer_info")
        request = application.info_requests.filter(answered_at__isnull=True).last()
        if request is not None:
            request.answer, request.answered_at = answer, timezone.now()
            request.save(update_fields=["answer", "answered_at"])
        target = application.resume_state or ApplicationState.SCREENING
        application.resume_state = ""
        return _step(application, action="answer_info", actor=actor, target=target, note=answer)


# --- reviews -----------------------------------------------------------------------------------


def review_assign(*, application: Application, actor: User, reviewer: User) -> Review:
    with transaction.atomic():
        application = _locked(application)
        if not has_role(actor, application.city, Role.PROGRAM_MANAGER):
            raise DomainError(_("Only program managers assign reviewers."), code="forbidden")
        if not workflow.allowed("assign", application.state, {workflow.MANAGER}):
            raise DomainError(_("Reviewers cannot be assigned in this state."), code="conflict")
        if not has_role(reviewer, application.city, Role.REVIEWER):
            raise _invalid("reviewer", _("Choose a reviewer of this city."))
        if application.company.members.filter(pk=reviewer.pk).exists():
            raise _invalid("reviewer", _("This reviewer is a member of the applicant company."))
        if application.company.members.filter(pk=actor.pk).exists():
            raise DomainError(_(MEMBER_STAFF_MESSAGE), code="forbidden")
        review, created = Review.objects.get_or_create(
            application=application, reviewer=reviewer, defaults={"assigned_by": actor}
        )
        if created:
            audit_record(
                action="review.assign",
                city=application.city,
                actor=actor,
                target=application,
                data={"reviewer": reviewer.email},
            )
            from vouchers.tasks import review_assigned_notify

            transaction.on_commit(lambda: review_assigned_notify.delay(review.pk))
    return review


def _own_review(application: Application, actor: User) -> Review:
    review = (
        Review.objects.select_for_update().filter(application=application, reviewer=actor).first()
    )
    if review is None:
        raise DomainError(_("You are not assigned to this application."), code="forbidden")
    return review


def review_declare(
    *, application: Application, actor: User, conflict: bool, note: str = ""
) -> Review:
    """Before scoring, the reviewer declares whether they have a conflict of interest.
    A declared conflict ends their part in this application."""
    with transaction.atomic():
        application = _locked(application)
        review = _own_review(application, actor)
        if review.conflict is not None:
            raise DomainError(_("You have already declared."), code="conflict")
        review.conflict, review.conflict_note = bool(conflict), (note or "")[:300]
        review.save(update_fields=["conflict", "conflict_note"])
        audit_record(
            action="review.declare",
            city=application.city,
            actor=actor,
            target=application,
            data={"conflict": review.conflict, "note": review.conflict_note},
        )
    return review


def review_submit(
    *,
    application: Application,
    actor: User,
    scores: dict[str, int],
    comment: str,
    recommend: bool,
) -> Review:
    with transaction.atomic():
        application = _locked(application)
        _require(application, actor, "review")
        review = _own_review(application, actor)
        if review.conflict is None:
            raise DomainError(_("Declare any conflict of interest first."), code="conflict")
        if review.conflict:
            raise DomainError(
                _("You declared a conflict of interest; you cannot score."), code="forbidden"
            )
        if review.submitted_at is not None:
            raise DomainError(_("Your review is already submitted."), code="conflict")
        rubric = application.program.rubric or []
        errors: dict[str, list[str]] = {}
        total = Decimal("0")
        clean: dict[str, int] = {}
        for criterion in rubric:
            value = scores.get(criterion["name"])
            if not isinstance(value, int) or not 0 <= value <= criterion["max"]:
                errors[criterion["name"]] = [
                    _("A whole number from 0 to %(max)s.") % {"max": criterion["max"]}
                ]
                continue
            clean[criterion["name"]] = value
            total += Decimal(str(criterion["weight"])) * value
        if errors:
            raise DomainError(_("Please correct the scores."), fields=errors)
        review.scores, review.total, review.comment = clean, total, (comment or "").strip()
        review.recommend, review.submitted_at = bool(recommend), timezone.now()
        review.save()
        audit_record(
            action="review.submit",
            city=application.city,
            actor=actor,
            target=application,
            data={"total": str(total), "recommend": review.recommend},
        )
        done = list(application.reviews.filter(submitted_at__isnull=False, conflict=False))
        if len(done) >= application.program.reviews_required:
            yes = sum(1 for r in done if r.recommend)
            note = _("%(yes)s of %(n)s reviews recommend.") % {"yes": yes, "n": len(done)}
            if yes * 2 > len(done):
                _recommend(application, action="conclude_reviews", actor=None, note=note)
            else:
                application.decision_reason = note
                _step(
                    application,
                    action="conclude_reviews",
                    actor=None,
                    target=ApplicationState.NOT_RECOMMENDED,
                    note=note,
                    notify="not_recommended",
                )
    return review


# --- public notice and decisions ---------------------------------------------------------------


def objection_raise(*, application: Application, user: User, text: str) -> Objection:
    text = (text or "").strip()
    if not text:
        raise _invalid("text", _("Write your objection."))
    with transaction.atomic():
        application = _locked(application)
        if application.state != ApplicationState.IN_NOTICE or (
            application.notice_ends_at and timezone.now() > application.notice_ends_at
        ):
            raise DomainError(
                _("Objections are taken only during the public notice."), code="conflict"
            )
        # Each objection blocks approval until resolved: one person may not flood it.
        if (
            Objection.objects.filter(application=application, raised_by=user).count()
            >= MAX_OBJECTIONS_PER_PERSON
        ):
            raise DomainError(
                _(
                    "You have already raised %(n)s objections to this application; the city "
                    "will answer them. Add to an existing one by contacting the city."
                )
                % {"n": MAX_OBJECTIONS_PER_PERSON},
                code="conflict",
            )
        objection = Objection.objects.create(
            application=application, raised_by=user, text=text[:5000]
        )
        audit_record(
            action="objection.raise", city=application.city, actor=user, target=application
        )
    return objection


@retry_on_deadlock()
def objection_resolve(*, objection: Objection, actor: User, resolution: str) -> Objection:
    resolution = (resolution or "").strip()
    if not resolution:
        raise _invalid("resolution", _("Write how the objection was resolved."))
    with transaction.atomic():
        application = _locked(objection.application)
        _require(application, actor, "resolve_objection")
        objection = Objection.objects.select_for_update().get(pk=objection.pk)
        if objection.resolved_at is not None:
            raise DomainError(_("This objection is already resolved."), code="conflict")
        objection.resolution, objection.resolved_by = resolution, actor
        objection.resolved_at = timezone.now()
        objection.save()
        audit_record(
            action="objection.resolve", city=application.city, actor=actor, target=application
        )
    return objection


def _check_company_yearly_cap(application: Application, amount: Decimal) -> None:
    """The program's yearly cap per company, over this city's vouchers to the company
    this year (the eligibility rule's measure), enforced again at approval: the amount
    may differ from the request and other awards may have come since submission. The
    company row is locked first, so two approvals for one company in different programs
    (whose program locks do not meet) are decided one after the other."""
    cap = application.program.company_yearly_cap
    if cap is None:
        return
    Company.objects.select_for_update().filter(pk=application.company_id).first()
    awarded = Voucher.objects.filter(
        city_id=application.city_id,
        company_id=application.company_id,
        issued_at__year=timezone.localdate().year,
    ).aggregate(total=Sum("face_value"))["total"] or Decimal("0")
    if awarded + amount > cap:
        raise _invalid(
            "amount",
            _(
                "The company has ¥%(awarded)s from this city this year; with this award it "
                "would exceed the yearly cap of ¥%(cap)s."
            )
            % {"awarded": f"{awarded:,.2f}", "cap": f"{cap:,.2f}"},
        )


@retry_on_deadlock()
def application_approve(*, application: Application, actor: User, amount: Decimal):
    """Approve and issue the voucher, in one transaction: the program row is locked by
    `voucher_issue`, so concurrent approvals can never exceed the budget."""
    with transaction.atomic():
        application = _locked(application)
        _require(application, actor, "approve")
        if application.reviews.filter(reviewer=actor).exists():
            raise DomainError(
                _("You reviewed this application; another approver must decide."), code="forbidden"
            )
        program = application.program
        blocked = _notice_blocks(application)
        if blocked:
            raise DomainError(blocked, code="conflict")
        amount = Decimal(amount).quantize(Decimal("0.01"))
        if not program.award_min <= amount <= program.award_max:
            raise _invalid(
                "amount",
                _("Award between ¥%(low)s and ¥%(high)s.")
                % {"low": f"{program.award_min:,.2f}", "high": f"{program.award_max:,.2f}"},
            )
        _check_company_yearly_cap(application, amount)
        voucher = voucher_issue(
            program=program,
            company=application.company,
            amount=amount,
            actor=actor,
            memo=f"application {application.pk}",
        )
        voucher.application = application
        voucher.save(update_fields=["application"])
        application.awarded_amount, application.decided_at = amount, timezone.now()
        _step(
            application,
            action="approve",
            actor=actor,
            target=ApplicationState.APPROVED,
            note=voucher.code,
            notify="approved",
        )
    return voucher


@retry_on_deadlock()
def application_reject(*, application: Application, actor: User, reason: str) -> Application:
    reason = (reason or "").strip()
    if not reason:
        raise _invalid("reason", _("Give a reason."))
    with transaction.atomic():
        application = _locked(application)
        _require(application, actor, "reject")
        application.decision_reason, application.decided_at = reason, timezone.now()
        return _step(
            application,
            action="reject",
            actor=actor,
            target=ApplicationState.REJECTED,
            note=reason,
            notify="rejected",
        )


def notice_is_over(application: Application, now: datetime | None = None) -> bool:
    now = now or timezone.now()
    return application.notice_ends_at is None or now >= application.notice_ends_at
