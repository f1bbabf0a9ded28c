"""Outcome reports (成果报告, 验收): the company fills in and submits what its voucher
achieved; the city's program manager accepts it or returns it with comments. Each step
checks the actor's party and the state against `vouchers.outcomes.TRANSITIONS`, locks
the report, records the timeline and an audit event in one transaction, and tells the
other party after commit.

Lock order: the report row, then the audit chain (portal/locks.py).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from portal.audit import Actor, actor_name, audit_record
from portal.errors import DomainError
from portal.models import User
from portal.queue import publish_on_commit
from vouchers import outcomes
from vouchers.letters import letter_issue
from vouchers.models import (
    OUTCOME_DOCUMENT_TYPES,
    LetterKind,
    OutcomeChange,
    OutcomeDocument,
    OutcomeReport,
    OutcomeState,
)
from vouchers.outcome_usage import usage_summary
from vouchers.services._steps import invalid
from vouchers.services.applications import upload_checked
from vouchers.tasks import outcome_report_notify

MAX_OUTCOME_DOCUMENTS = 20
# The figures a report states, with the most each may be (a real company's, with room).
OUTCOME_COUNTS = {
    "models_trained": 10_000,
    "products_launched": 10_000,
    "papers_published": 10_000,
    "hires": 1_000_000,
}
MAX_PARAMETERS_BILLIONS = Decimal("100000")
OUTCOME_TEXTS = {"benchmarks": 5000, "summary": 10_000}
OUTCOME_FIELDS = (*OUTCOME_COUNTS, "largest_model_parameters", *OUTCOME_TEXTS)


def _locked(report: OutcomeReport) -> OutcomeReport:
    return (
        OutcomeReport.objects.select_for_update(of=("self",))
        .select_related("city", "program", "company", "voucher")
        .get(pk=report.pk)
    )


def _require_member(report: OutcomeReport, actor: User) -> None:
    if outcomes.MEMBER not in outcomes.parties(report, actor):
        raise DomainError(_("Not found."), code="not_found")


def _require(report: OutcomeReport, actor: User, action: str) -> None:
    who = outcomes.parties(report, actor)
    if not who:
        raise DomainError(_("Not found."), code="not_found")
    transition = outcomes.TRANSITIONS[action]
    if transition.who == outcomes.MANAGER and outcomes.MEMBER in who:
        raise DomainError(
            _("You belong to the reporting company; another program manager must decide."),
            code="forbidden",
        )
    if transition.who not in who:
        raise DomainError(_("Your role does not allow this step."), code="forbidden")
    if not outcomes.allowed(action, report.state):
        raise DomainError(
            _("This report is %(state)s; that step is not possible now.")
            % {"state": report.get_state_display()},
            code="conflict",
        )


def _step(report: OutcomeReport, *, step: str, actor: Actor, comment: str = "") -> None:
    """Move the locked report along the table (the caller checked the rules)."""
    before, target = report.state, outcomes.TRANSITIONS[step].target
    report.state = target
    report.save()
    change = OutcomeChange.objects.create(
        report=report,
        from_state=before,
        to_state=target,
        actor_label=actor_name(actor),
        comment=comment[:5000],
    )
    audit_record(
        action=f"outcome.{step}",
        city=report.city,
        actor=actor,
        target=report,
        data={
            "voucher": report.voucher.code,
            "stage": report.stage,
            "from": before,
            "to": target,
            "comment": comment[:500],
        },
    )
    publish_on_commit(outcome_report_notify, report.pk, step, change.pk)


def _clean_values(values: dict[str, Any]) -> dict[str, Any]:
    """The report's figures and texts, each checked; a field error names what is wrong."""
    cleaned: dict[str, Any] = {}
    for name, most in OUTCOME_COUNTS.items():
        if name in values:
            number = values[name]
            if number is None or number == "":
                number = 0
            if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= most:
                raise invalid(name, _("A whole number from 0 to %(n)s.") % {"n": f"{most:,}"})
            cleaned[name] = number
    if "largest_model_parameters" in values:
        size = values["largest_model_parameters"]
        if size is not None and (
            not isinstance(size, Decimal)
            or not size.is_finite()
            or not Decimal(0) <= size <= MAX_PARAMETERS_BILLIONS
        ):
            raise invalid(
                "largest_model_parameters",
                _("Billions of parameters, from 0 to %(n)s.")
                % {"n": f"{MAX_PARAMETERS_BILLIONS:,}"},
            )
        cleaned["largest_model_parameters"] = size
    for name, most in OUTCOME_TEXTS.items():
        if name in values:
            text = str(values[name] or "").strip()
            if len(text) > most:
                raise invalid(name, _("At most %(n)s characters.") % {"n": f"{most:,}"})
            cleaned[name] = text
    return cleaned


def outcome_report_update(
    *, report: OutcomeReport, actor: User, values: dict[str, Any]
) -> OutcomeReport:
    """The company's figures and text, while the report is with it (draft or returned)."""
    cleaned = _clean_values(values)
    with transaction.atomic():
        report = _locked(report)
        _require_member(report, actor)
        if report.state not in outcomes.EDITABLE:
            raise DomainError(
                _("This report is %(state)s and can no longer be changed.")
                % {"state": report.get_state_display()},
                code="conflict",
            )
        for name, value in cleaned.items():
            setattr(report, name, value)
        report.save()
        audit_record(
            action="outcome.update",
            city=report.city,
            actor=actor,
            target=report,
            data={k: str(v)[:200] for k, v in cleaned.items()},
        )
    return report


def outcome_report_submit(*, report: OutcomeReport, actor: User) -> OutcomeReport:
    """Send the report to the program manager (submit, or resubmit after a return). The
    usage summary is taken from the ledger now, so the report keeps what it said."""
    with transaction.atomic():
        report = _locked(report)
        action = "resubmit" if report.state == OutcomeState.RETURNED else "submit"
        _require(report, actor, action)
        if not report.summary.strip():
            raise invalid("summary", _("Say in a few sentences what was achieved."))
        report.usage_summary = usage_summary(report.voucher)
        report.submitted_at = timezone.now()
        _step(report, step=action, actor=actor)
    return report


def outcome_report_accept(
    *, report: OutcomeReport, actor: User, comment: str = ""
) -> OutcomeReport:
    """The program manager accepts the report (验收通过): final."""
    with transaction.atomic():
        report = _locked(report)
        _require(report, actor, "accept")
        report.review_comment = comment.strip()[:5000]
        report.decided_at = timezone.now()
        report.decided_by = actor
        application = report.voucher.application
        if application is not None:
            # The acceptance letter (验收通知书) joins the application's letters; issued
            # before the audit event, as every letter (its number's lock first).
            report.letter = letter_issue(
                application=application, kind=LetterKind.OUTCOME_ACCEPTED, report=report
            )
        _step(report, step="accept", actor=actor, comment=report.review_comment)
    return report


def outcome_report_return(*, report: OutcomeReport, actor: User, comment: str) -> OutcomeReport:
    """The program manager sends the report back with what to change (required)."""
    comment = (comment or "").strip()
    if not comment:
        raise invalid("comment", _("Say what the company should change."))
    with transaction.atomic():
        report = _locked(report)
        _require(report, actor, "return")
        report.review_comment = comment[:5000]
        _step(report, step="return", actor=actor, comment=report.review_comment)
    return report


# --- documents ---------------------------------------------------------------------------------


def outcome_document_add(
    *, report: OutcomeReport, actor: User, doc_type: str, upload: UploadedFile[bytes]
) -> OutcomeDocument:
    """Attach a PDF, PNG or JPEG (judged by content, as an application's documents) of
    at most 20 MB while the report is with the company."""
    checked = upload_checked(upload)
    if doc_type not in OUTCOME_DOCUMENT_TYPES:
        raise invalid("doc_type", _("Choose the document type."))
    with transaction.atomic():
        report = _locked(report)
        _require_member(report, actor)
        if report.state not in outcomes.EDITABLE:
            raise DomainError(_("Documents can no longer be added."), code="conflict")
        if report.documents.count() >= MAX_OUTCOME_DOCUMENTS:
            raise invalid(
                "file",
                _("A report takes at most %(n)s documents.") % {"n": MAX_OUTCOME_DOCUMENTS},
            )
        document = OutcomeDocument.objects.create(
            report=report,
            doc_type=doc_type,
            **checked._asdict(),
            uploaded_by=actor,
        )
        audit_record(
            action="outcome.document_add",
            city=report.city,
            actor=actor,
            target=document,
            data={"report": report.pk, "doc_type": doc_type, "size": checked.size},
        )
    return document


def outcome_document_remove(
    *, report: OutcomeReport, actor: User, document: OutcomeDocument
) -> None:
    with transaction.atomic():
        report = _locked(report)
        _require_member(report, actor)
        if report.state not in outcomes.EDITABLE:
            raise DomainError(_("Documents can no longer be changed."), code="conflict")
        found = OutcomeDocument.objects.filter(pk=document.pk, report=report).first()
        if found is None:
            raise DomainError(_("Not found."), code="not_found")
        storage, name = found.file.storage, found.file.name
        data = {"report": report.pk, "doc_type": found.doc_type, "name": found.original_name}
        found.delete()
        if name:
            # The file goes once the row's deletion commits; a rollback keeps both.
            transaction.on_commit(lambda: storage.delete(name))
        audit_record(
            action="outcome.document_remove",
            city=report.city,
            actor=actor,
            target=report,
            data=data,
        )
