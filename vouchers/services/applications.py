"""Applications: drafts and their documents, submission (eligibility), screening,
requests for information, and the approver's decision (which issues the voucher).

Every step checks the actor's party and the state against `vouchers.workflow`, locks
the application row, and goes through `_steps.step` (timeline, audit event,
notification after commit).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from portal.audit import audit_record
from portal.errors import DomainError
from portal.locks import retry_on_deadlock
from portal.models import User
from vouchers import eligibility, workflow
from vouchers.ledger import award_reserve, voucher_issue
from vouchers.letters import letter_number_take
from vouchers.models import (
    Application,
    ApplicationState,
    Company,
    ComputePlanRow,
    Document,
    EligibilityOutcome,
    InfoRequest,
    Program,
    ProgramStatus,
    StateChange,
    Voucher,
)
from vouchers.notes import failed_rules_note
from vouchers.services._steps import (
    invalid,
    locked,
    require,
    step,
    to_not_recommended,
    to_recommended,
)

MAX_DOCUMENT_BYTES = 20 * 1024 * 1024
# Floods: documents per application.
MAX_DOCUMENTS_PER_APPLICATION = 30
# Content, not the name, decides the type.
_MAGIC = {
    b"%PDF-": "application/pdf",
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
}


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
            application=application,
            from_state="",
            to_state=ApplicationState.DRAFT,
            actor_label=actor.email,
        )
        audit_record(
            action="application.create", city=program.city, actor=actor, target=application
        )
    return application


def application_update(
    *,
    application: Application,
    actor: User,
    values: dict[str, Any],
    plan: list[dict[str, Any]] | None = None,
) -> Application:
    """Save a draft (any subset of fields), or the company's answer to a request."""
    with transaction.atomic():
        application = locked(application)
        if workflow.MEMBER not in workflow.parties(application, actor):
            raise DomainError(_("Not found."), code="not_found")
        if application.state not in workflow.EDITABLE:
            raise DomainError(_("The application can no longer be edited."), code="conflict")
        amount, program = values.get("requested_amount"), application.program
        if amount is not None and not program.award_min <= amount <= program.award_max:
            # Said at the amount step, not first at submission (issue #13 item 9).
            raise invalid(
                "requested_amount",
                _("The program awards between ¥%(low)s and ¥%(high)s.")
                % {"low": f"{program.award_min:,.2f}", "high": f"{program.award_max:,.2f}"},
            )
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


class CheckedUpload(NamedTuple):
    """An uploaded file that passed the checks every document passes, with the fields an
    `UploadedDocument` records of it."""

    file: UploadedFile[bytes]
    original_name: str
    content_type: str
    size: int


def upload_checked(upload: UploadedFile[bytes]) -> CheckedUpload:
    """A PDF, PNG or JPEG (judged by its first bytes, not its name) of at most 20 MB, or
    a field error on `file`. Applications' and outcome reports' documents alike."""
    size = upload.size or 0
    if size > MAX_DOCUMENT_BYTES:
        raise invalid("file", _("A document may be at most 20 MB."))
    head = upload.read(16)
    upload.seek(0)
    content_type = sniff_content_type(head)
    if content_type is None:
        raise invalid(
            "file", _("Only PDF, PNG and JPEG files are accepted (judged by their content).")
        )
    return CheckedUpload(upload, str(upload.name)[:200], content_type, size)


def document_add(
    *, application: Application, actor: User, doc_type: str, upload: UploadedFile[bytes]
) -> Document:
    """Attach a PDF, PNG or JPEG (judged by content) of at most 20 MB."""
    checked = upload_checked(upload)
    doc_type = (doc_type or "").strip()[:60]
    if not doc_type:
        raise invalid("doc_type", _("Choose the document type."))
    with transaction.atomic():
        application = locked(application)
        if workflow.MEMBER not in workflow.parties(application, actor):
            raise DomainError(_("Not found."), code="not_found")
        if application.state not in workflow.EDITABLE:
            raise DomainError(_("Documents can no longer be added."), code="conflict")
        if application.documents.count() >= MAX_DOCUMENTS_PER_APPLICATION:
            raise invalid(
                "file",
                _("An application takes at most %(n)s documents.")
                % {"n": MAX_DOCUMENTS_PER_APPLICATION},
            )
        document = Document.objects.create(
            application=application,
            doc_type=doc_type,
            **checked._asdict(),
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
                "content_type": checked.content_type,
                "size": document.size,
            },
        )
    return document


def application_submit(*, application: Application, actor: User) -> Application:
    with transaction.atomic():
        application = locked(application)
        require(application, actor, "submit")
        problems = workflow.application_problems(application)
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
            reasons = failed_rules_note(outcomes)
            return to_not_recommended(application, action="submit", actor=actor, reason=reasons)
        return step(
            application,
            action="submit",
            actor=actor,
            target=ApplicationState.SUBMITTED,
            notify="submitted",
        )


def application_withdraw(*, application: Application, actor: User) -> Application:
    with transaction.atomic():
        application = locked(application)
        require(application, actor, "withdraw")
        return step(application, action="withdraw", actor=actor, target=ApplicationState.WITHDRAWN)


def application_start_screening(*, application: Application, actor: User) -> Application:
    with transaction.atomic():
        application = locked(application)
        require(application, actor, "start_screening")
        return step(
            application, action="start_screening", actor=actor, target=ApplicationState.SCREENING
        )


def application_pass_screening(
    *, application: Application, actor: User, note: str = ""
) -> Application:
    with transaction.atomic():
        application = locked(application)
        require(application, actor, "pass_screening")
        if application.program.reviews_required > 0:
            return step(
                application,
                action="pass_screening",
                actor=actor,
                target=ApplicationState.IN_REVIEW,
                note=note,
            )
        return to_recommended(application, action="pass_screening", actor=actor, note=note)


def application_fail_screening(
    *, application: Application, actor: User, reason: str
) -> Application:
    reason = (reason or "").strip()
    if not reason:
        raise invalid("reason", _("Give a reason."))
    with transaction.atomic():
        application = locked(application)
        require(application, actor, "fail_screening")
        return to_not_recommended(application, action="fail_screening", actor=actor, reason=reason)


def application_request_info(
    *, application: Application, actor: User, question: str
) -> InfoRequest:
    question = (question or "").strip()
    if not question:
        raise invalid("question", _("Write what you need to know."))
    with transaction.atomic():
        application = locked(application)
        require(application, actor, "request_info")
        request = InfoRequest.objects.create(
            application=application, asked_by=actor, question=question
        )
        application.resume_state = application.state
        step(
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
        raise invalid("answer", _("Write your answer."))
    with transaction.atomic():
        application = locked(application)
        require(application, actor, "answer_info")
        request = application.info_requests.filter(answered_at__isnull=True).last()
        if request is not None:
            request.answer, request.answered_at = answer, timezone.now()
            request.save(update_fields=["answer", "answered_at"])
        target = application.resume_state or ApplicationState.SCREENING
        application.resume_state = ""
        return step(application, action="answer_info", actor=actor, target=target, note=answer)


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
    # Awards awaiting acceptance count too: accepting one issues its voucher unchecked.
    awarded += Application.objects.filter(
        city_id=application.city_id,
        company_id=application.company_id,
        state=ApplicationState.AWARDED,
    ).exclude(pk=application.pk).aggregate(total=Sum("awarded_amount"))["total"] or Decimal("0")
    if awarded + amount > cap:
        raise invalid(
            "amount",
            _(
                "The company has ¥%(awarded)s from this city this year; with this award it "
                "would exceed the yearly cap of ¥%(cap)s."
            )
            % {"awarded": f"{awarded:,.2f}", "cap": f"{cap:,.2f}"},
        )


@retry_on_deadlock()
def application_approve(
    *, application: Application, actor: User, amount: Decimal, reason: str = ""
) -> Voucher | None:
    """Approve, in one transaction: the voucher is issued at once, or, when the program
    has an acceptance step (`acceptance_days`), the amount is reserved from the budget
    and the company accepts or declines the award (`vouchers.services.awards`); then
    None is returned. Less than requested needs a reason. The program row is locked
    before anything is allocated or reserved, so concurrent approvals can never exceed
    the budget; the decision letter's number is taken before the first audit event."""
    reason = (reason or "").strip()
    with transaction.atomic():
        application = locked(application)
        require(application, actor, "approve")
        blockers = workflow.approval_blockers(application, actor)
        if blockers:
            raise DomainError(blockers[0].message, code=blockers[0].code)
        program = application.program
        amount = Decimal(amount).quantize(Decimal("0.01"))
        if not program.award_min <= amount <= program.award_max:
            raise invalid(
                "amount",
                _("Award between ¥%(low)s and ¥%(high)s.")
                % {"low": f"{program.award_min:,.2f}", "high": f"{program.award_max:,.2f}"},
            )
        requested = application.requested_amount
        if requested is not None and amount < requested and not reason:
            raise invalid(
                "reason",
                _("Say why the award is less than the ¥%(requested)s requested.")
                % {"requested": f"{requested:,.2f}"},
            )
        _check_company_yearly_cap(application, amount)
        application.awarded_amount, application.decided_at = amount, timezone.now()
        application.award_reason = reason
        if program.acceptance_days > 0:
            award_reserve(program=program, amount=amount)
            application.award_expires_at = application.decided_at + timedelta(
                days=program.acceptance_days
            )
            step(
                application,
                action="approve",
                actor=actor,
                target=ApplicationState.AWARDED,
                note=f"¥{amount:,.2f} {reason}".strip(),
                notify="awarded",
                letter_number=letter_number_take(application.city),
            )
            return None
        # The program first (voucher_issue takes it again), then the letter's number:
        # both before voucher_issue's audit event (portal/locks.py).
        Program.objects.select_for_update().get(pk=program.pk)
        number = letter_number_take(application.city)
        voucher = voucher_issue(
            program=program,
            company=application.company,
            amount=amount,
            actor=actor,
            memo=f"application {application.pk}",
        )
        voucher.application = application
        voucher.save(update_fields=["application"])
        step(
            application,
            action="approve",
            actor=actor,
            target=ApplicationState.APPROVED,
            note=voucher.code,
            notify="approved",
            letter_number=number,
        )
    return voucher


@retry_on_deadlock()
def application_reject(*, application: Application, actor: User, reason: str) -> Application:
    reason = (reason or "").strip()
    if not reason:
        raise invalid("reason", _("Give a reason."))
    with transaction.atomic():
        application = locked(application)
        require(application, actor, "reject")
        application.decision_reason, application.decided_at = reason, timezone.now()
        return step(
            application,
            action="reject",
            actor=actor,
            target=ApplicationState.REJECTED,
            note=reason,
            notify="rejected",
        )
