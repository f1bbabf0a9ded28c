"""Outcome reports (成果报告, 验收; vouchers.outcomes): when they are opened, the state
machine against a table written here, the parties who may act, audit, notifications and
documents. Pages: test_outcome_pages.py; the eligibility rule, reminders and program
settings: test_outcome_rules.py."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from portal.audit import SYSTEM
from portal.errors import DomainError
from portal.models import AuditEvent, Notification
from tests.factories import MembershipFactory
from tests.vouchers.conftest import PDF, complete_draft, make_program, program_values
from tests.vouchers.outcome_world import (  # noqa: F401 - fixtures and constants
    FINAL_DUE,
    MIDTERM_DUE,
    START,
    S,
    filled,
    final,
    program,
    voucher,
)
from vouchers import services
from vouchers.jobs import outcome_reports_open_missing
from vouchers.ledger import voucher_issue
from vouchers.models import (
    DecisionLetter,
    LetterKind,
    OutcomeReport,
)
from vouchers.outcomes import TRANSITIONS, outcome_reports_schedule

# --- schedule -----------------------------------------------------------------------------------


def test_issuing_a_voucher_opens_its_reports_due_as_the_program_says(voucher):
    reports = {r.stage: r for r in OutcomeReport.objects.filter(voucher=voucher)}
    assert {s: r.due_on for s, r in reports.items()} == {
        "final": FINAL_DUE,
        "midterm": MIDTERM_DUE,
    }
    assert {r.state for r in reports.values()} == {S.DRAFT}
    assert {r.company_id for r in reports.values()} == {voucher.company_id}
    assert outcome_reports_schedule(voucher=voucher) == []  # idempotent


def test_a_program_without_reports_opens_none(shanghai, company):
    program = make_program(shanghai.city, slug="no-reports")
    voucher = voucher_issue(
        program=program, company=company, amount=Decimal("100000"), actor=SYSTEM
    )
    assert not OutcomeReport.objects.filter(voucher=voucher).exists()


def test_the_job_opens_reports_for_vouchers_issued_before_the_program_asked(shanghai, company):
    program = make_program(shanghai.city, slug="later")
    voucher = voucher_issue(
        program=program, company=company, amount=Decimal("100000"), actor=SYSTEM
    )
    program.outcome_reports_required = True
    program.save()
    assert outcome_reports_open_missing() == 1
    assert outcome_reports_open_missing() == 0
    assert OutcomeReport.objects.get(voucher=voucher).stage == "final"


# --- the state machine --------------------------------------------------------------------------

# (state, action) → the state after it. Every pair not listed is refused and changes nothing.
ALLOWED = {
    (S.DRAFT, "submit"): S.SUBMITTED,
    (S.RETURNED, "submit"): S.RESUBMITTED,
    (S.SUBMITTED, "accept"): S.ACCEPTED,
    (S.SUBMITTED, "return"): S.RETURNED,
    (S.RESUBMITTED, "accept"): S.ACCEPTED,
    (S.RESUBMITTED, "return"): S.RETURNED,
}


def test_the_table_in_code_is_the_table_written_here():
    in_code = {
        (s, "submit" if name == "resubmit" else name): t.target
        for name, t in TRANSITIONS.items()
        for s in t.sources
    }
    assert in_code == ALLOWED


@pytest.mark.parametrize("state", list(S))
@pytest.mark.parametrize("action", ["submit", "accept", "return"])
def test_each_step_from_each_state(state, action, final, startup_user, shanghai):
    filled(final, startup_user)
    OutcomeReport.objects.filter(pk=final.pk).update(state=state)
    final.refresh_from_db()
    events = AuditEvent.objects.count()
    step = {
        "submit": lambda: services.outcome_report_submit(report=final, actor=startup_user),
        "accept": lambda: services.outcome_report_accept(report=final, actor=shanghai.manager),
        "return": lambda: services.outcome_report_return(
            report=final, actor=shanghai.manager, comment="请补充基准测试结果。"
        ),
    }[action]
    if (state, action) in ALLOWED:
        step()
        final.refresh_from_db()
        assert final.state == ALLOWED[(state, action)]
        assert final.timeline.get().to_state == final.state
        assert AuditEvent.objects.count() == events + 1
    else:
        with pytest.raises(DomainError) as refused:
            step()
        assert refused.value.code == "conflict"
        final.refresh_from_db()
        assert final.state == state
        assert AuditEvent.objects.count() == events
        assert not final.timeline.exists()


def test_only_the_company_submits_and_only_the_citys_program_manager_decides(
    final, startup_user, shanghai, shenzhen, outsider
):
    filled(final, startup_user)
    for user, code in (
        (shanghai.manager, "forbidden"),
        (shenzhen.manager, "not_found"),
        (outsider, "not_found"),
    ):
        with pytest.raises(DomainError) as refused:
            services.outcome_report_submit(report=final, actor=user)
        assert refused.value.code == code, user.email
    services.outcome_report_submit(report=final, actor=startup_user)
    for user, code in (
        (startup_user, "forbidden"),
        (shanghai.approver, "not_found"),
        (shanghai.reviewer, "not_found"),
        (shenzhen.manager, "not_found"),
        (outsider, "not_found"),
    ):
        with pytest.raises(DomainError) as refused:
            services.outcome_report_accept(report=final, actor=user)
        assert refused.value.code == code, user.email
    final.refresh_from_db()
    assert final.state == S.SUBMITTED


def test_a_program_manager_of_the_company_may_not_decide_its_report(final, startup_user, shanghai):
    MembershipFactory(user=startup_user, city=shanghai.city, role="program_manager")
    filled(final, startup_user)
    services.outcome_report_submit(report=final, actor=startup_user)
    with pytest.raises(DomainError) as refused:
        services.outcome_report_accept(report=final, actor=startup_user)
    assert refused.value.code == "forbidden"


def test_submitting_needs_a_summary_and_keeps_the_usage_from_the_ledger(final, startup_user):
    with pytest.raises(DomainError) as refused:
        services.outcome_report_submit(report=final, actor=startup_user)
    assert "summary" in refused.value.fields
    filled(final, startup_user)
    services.outcome_report_submit(report=final, actor=startup_user)
    final.refresh_from_db()
    assert final.usage_summary["face_value"] == "500000.00"
    assert final.usage_summary["charged"] == "0.00"
    assert final.submitted_at is not None


def test_a_return_needs_comments_and_the_history_keeps_every_round(final, startup_user, shanghai):
    filled(final, startup_user)
    services.outcome_report_submit(report=final, actor=startup_user)
    with pytest.raises(DomainError):
        services.outcome_report_return(report=final, actor=shanghai.manager, comment="  ")
    services.outcome_report_return(report=final, actor=shanghai.manager, comment="请补充论文清单。")
    services.outcome_report_update(report=final, actor=startup_user, values={"papers_published": 4})
    services.outcome_report_submit(report=final, actor=startup_user)
    services.outcome_report_accept(report=final, actor=shanghai.manager, comment="验收通过。")
    final.refresh_from_db()
    assert final.state == S.ACCEPTED and final.decided_by == shanghai.manager
    assert [(c.to_state, c.comment) for c in final.timeline.all()] == [
        ("submitted", ""),
        ("returned", "请补充论文清单。"),
        ("resubmitted", ""),
        ("accepted", "验收通过。"),
    ]
    actions = list(
        AuditEvent.objects.filter(action__startswith="outcome.")
        .exclude(action="outcome.update")
        .order_by("pk")
        .values_list("action", "actor_id")
    )
    assert actions[-4:] == [
        ("outcome.submit", startup_user.pk),
        ("outcome.return", shanghai.manager.pk),
        ("outcome.resubmit", startup_user.pk),
        ("outcome.accept", shanghai.manager.pk),
    ]


def test_an_accepted_or_submitted_report_cannot_be_changed(final, startup_user):
    filled(final, startup_user)
    services.outcome_report_submit(report=final, actor=startup_user)
    with pytest.raises(DomainError) as refused:
        services.outcome_report_update(report=final, actor=startup_user, values={"hires": 99})
    assert refused.value.code == "conflict"
    final.refresh_from_db()
    assert final.hires == 5


@pytest.mark.parametrize(
    "field,value",
    [
        ("hires", -1),
        ("hires", 10**9),
        ("models_trained", True),
        ("largest_model_parameters", Decimal("NaN")),
        ("largest_model_parameters", Decimal("-1")),
        ("summary", "x" * 10_001),
    ],
)
def test_bad_figures_are_refused_on_their_field(final, startup_user, field, value):
    with pytest.raises(DomainError) as refused:
        services.outcome_report_update(report=final, actor=startup_user, values={field: value})
    assert field in refused.value.fields


# --- notifications ----------------------------------------------------------------------------


@pytest.mark.usefixtures("eager_celery")
def test_each_step_tells_the_other_party(
    final, startup_user, shanghai, django_capture_on_commit_callbacks
):
    filled(final, startup_user)
    with django_capture_on_commit_callbacks(execute=True):
        services.outcome_report_submit(report=final, actor=startup_user)
    assert Notification.objects.filter(user=shanghai.manager, kind="outcome").count() == 1
    assert not Notification.objects.filter(user=shanghai.reviewer).exists()
    with django_capture_on_commit_callbacks(execute=True):
        services.outcome_report_return(
            report=final, actor=shanghai.manager, comment="请补充基准测试。"
        )
    told = Notification.objects.get(user=startup_user, kind="outcome")
    assert "请补充基准测试。" in told.body
    assert told.path == reverse("vouchers:my_outcome", args=[final.pk])
    assert any(m.to == [startup_user.email] for m in mail.outbox)


# --- documents ----------------------------------------------------------------------------------


def test_documents_are_checked_as_an_applications_are(final, startup_user, outsider):
    fake = SimpleUploadedFile("report.pdf", b"MZ\x90\x00 not a pdf")
    with pytest.raises(DomainError) as refused:
        services.outcome_document_add(
            report=final, actor=startup_user, doc_type="outcome_report", upload=fake
        )
    assert "file" in refused.value.fields
    with pytest.raises(DomainError):
        services.outcome_document_add(
            report=final,
            actor=outsider,
            doc_type="outcome_report",
            upload=SimpleUploadedFile("r.pdf", PDF),
        )
    document = services.outcome_document_add(
        report=final,
        actor=startup_user,
        doc_type="outcome_report",
        upload=SimpleUploadedFile("成果报告.pdf", PDF),
    )
    assert document.content_type == "application/pdf"
    assert AuditEvent.objects.filter(action="outcome.document_add").exists()


# --- the acceptance letter ----------------------------------------------------------------------


@pytest.mark.usefixtures("eager_celery")
def test_accepting_a_report_of_an_awarded_voucher_issues_the_acceptance_letter(
    shanghai, company, startup_user, client, django_capture_on_commit_callbacks
):
    program = services.program_save(
        city=shanghai.city,
        actor=shanghai.manager,
        values=program_values(slug="with-reports", outcome_reports_required=True),
    )
    app = complete_draft(program, company, startup_user)
    services.application_submit(application=app, actor=startup_user)
    services.application_start_screening(application=app, actor=shanghai.manager)
    services.application_pass_screening(application=app, actor=shanghai.manager)
    services.application_approve(
        application=app, actor=shanghai.approver, amount=Decimal("500000.00")
    )
    report = OutcomeReport.objects.get(voucher__application=app, stage="final")
    filled(report, startup_user)
    services.outcome_report_submit(report=report, actor=startup_user)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.outcome_report_accept(report=report, actor=shanghai.manager, comment="成果显著。")
    report.refresh_from_db()
    letter = DecisionLetter.objects.get(application=app, kind=LetterKind.OUTCOME_ACCEPTED)
    assert report.letter == letter and letter.number.startswith("SH-")
    assert "成果显著。" in letter.body and report.voucher.code in letter.body
    sent = [m for m in mail.outbox if m.to == [startup_user.email]]
    assert [a[0] for a in sent[0].attachments] == [f"{letter.number}.pdf"]
    client.force_login(startup_user)
    page = client.get(reverse("vouchers:my_outcome", args=[report.pk])).content.decode()
    download = reverse("vouchers:my_letter", args=[app.pk, letter.pk])
    assert download in page
    assert client.get(download)["Content-Type"] == "application/pdf"
