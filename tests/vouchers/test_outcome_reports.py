"""Outcome reports (成果报告, 验收; vouchers.outcomes): the state machine against a table
written here, the parties who may act, the company's and the program manager's pages,
isolation (another company, another city: 404 and nothing changes), audit, notifications,
documents, the eligibility rule `no_overdue_outcome_report` and the reminders."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from portal.audit import SYSTEM
from portal.errors import DomainError
from portal.models import AuditEvent, Notification
from tests.factories import MembershipFactory, UserFactory
from tests.vouchers.conftest import PDF, complete_draft, make_program
from vouchers import eligibility, services
from vouchers.credit_code import credit_code_generate
from vouchers.jobs import outcome_reminders_send, outcome_reports_open_missing
from vouchers.ledger import voucher_issue, voucher_revoke
from vouchers.models import (
    Application,
    OutcomeDocument,
    OutcomeReport,
    OutcomeState,
    ReminderSent,
)
from vouchers.outcomes import TRANSITIONS, outcome_reports_schedule

S = OutcomeState
START = date(2026, 1, 1)  # the voucher's first day; 12 months: last day 2026-12-31
FINAL_DUE = date(2027, 1, 30)  # 30 days after the last day
MIDTERM_DUE = date(2026, 7, 1)  # 6 months after the first


@pytest.fixture
def program(shanghai):
    return make_program(
        shanghai.city,
        outcome_reports_required=True,
        outcome_final_days=30,
        outcome_midterm_months=6,
    )


@pytest.fixture
def voucher(program, company, shanghai):
    return voucher_issue(
        program=program,
        company=company,
        amount=Decimal("500000.00"),
        actor=SYSTEM,
        valid_from=START,
    )


@pytest.fixture
def final(voucher) -> OutcomeReport:
    return OutcomeReport.objects.get(voucher=voucher, stage="final")


def _filled(report: OutcomeReport, user) -> OutcomeReport:
    return services.outcome_report_update(
        report=report,
        actor=user,
        values={
            "models_trained": 2,
            "largest_model_parameters": Decimal("7"),
            "benchmarks": "C-Eval 71.2",
            "products_launched": 1,
            "papers_published": 3,
            "hires": 5,
            "summary": "训练并上线了 70 亿参数模型。",
        },
    )


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
    _filled(final, startup_user)
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
    _filled(final, startup_user)
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
    _filled(final, startup_user)
    services.outcome_report_submit(report=final, actor=startup_user)
    with pytest.raises(DomainError) as refused:
        services.outcome_report_accept(report=final, actor=startup_user)
    assert refused.value.code == "forbidden"


def test_submitting_needs_a_summary_and_keeps_the_usage_from_the_ledger(final, startup_user):
    with pytest.raises(DomainError) as refused:
        services.outcome_report_submit(report=final, actor=startup_user)
    assert "summary" in refused.value.fields
    _filled(final, startup_user)
    services.outcome_report_submit(report=final, actor=startup_user)
    final.refresh_from_db()
    assert final.usage_summary["face_value"] == "500000.00"
    assert final.usage_summary["charged"] == "0.00"
    assert final.submitted_at is not None


def test_a_return_needs_comments_and_the_history_keeps_every_round(final, startup_user, shanghai):
    _filled(final, startup_user)
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
    _filled(final, startup_user)
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
    _filled(final, startup_user)
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


# --- pages --------------------------------------------------------------------------------------


def test_the_company_fills_in_uploads_and_submits_on_its_page(client, final, startup_user):
    client.force_login(startup_user)
    url = reverse("vouchers:my_outcome", args=[final.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert "500,000.00" in page.content.decode()
    response = client.post(
        reverse("vouchers:my_outcome_document_add", args=[final.pk]),
        {"doc_type": "paper", "file": SimpleUploadedFile("paper.pdf", PDF)},
    )
    assert response.status_code == 302
    document = OutcomeDocument.objects.get(report=final)
    assert (
        client.get(
            reverse("vouchers:my_outcome_document", args=[final.pk, document.pk])
        ).status_code
        == 200
    )
    response = client.post(
        url,
        {
            "models_trained": "1",
            "largest_model_parameters": "13",
            "products_launched": "",
            "papers_published": "2",
            "hires": "4",
            "benchmarks": "",
            "summary": "训练了一个 130 亿参数模型。",
            "go": "submit",
        },
    )
    assert response.status_code == 302
    final.refresh_from_db()
    assert (final.state, final.models_trained, final.largest_model_parameters) == (
        S.SUBMITTED,
        1,
        Decimal("13.00"),
    )
    page = client.get(url).content.decode()
    assert "Save and submit" not in page and "保存并提交" not in page


def test_a_bad_post_shows_its_errors_and_saves_nothing(client, final, startup_user):
    client.force_login(startup_user)
    url = reverse("vouchers:my_outcome", args=[final.pk])
    response = client.post(url, {"hires": "-3", "largest_model_parameters": "abc", "go": "submit"})
    assert response.status_code == 200
    final.refresh_from_db()
    assert final.state == S.DRAFT and final.hires == 0
    response = client.post(url, {"summary": "", "go": "submit"})
    assert response.status_code == 200
    final.refresh_from_db()
    assert final.state == S.DRAFT


def test_the_company_home_lists_the_report_due_soon(client, final, startup_user):
    with time_machine.travel(FINAL_DUE - timedelta(days=3), tick=False):
        client.force_login(startup_user)
        page = client.get(reverse("vouchers:company_home")).content.decode()
        assert reverse("vouchers:my_outcome", args=[final.pk]) in page
        todo = client.get(reverse("vouchers:my_outcomes") + "?todo=1").content.decode()
        assert final.voucher.code in todo
    with time_machine.travel(START + timedelta(days=10), tick=False):
        client.force_login(startup_user)
        page = client.get(reverse("vouchers:company_home")).content.decode()
        assert reverse("vouchers:my_outcome", args=[final.pk]) not in page


def test_the_program_manager_accepts_from_the_queue(client, final, startup_user, shanghai):
    _filled(final, startup_user)
    services.outcome_report_submit(report=final, actor=startup_user)
    client.force_login(shanghai.manager)
    home = client.get(reverse("portal:staff_home", args=["shanghai"])).content.decode()
    detail = reverse("vouchers:staff_outcome", args=["shanghai", final.pk])
    assert detail in home
    queue = client.get(reverse("vouchers:staff_outcomes", args=["shanghai"]) + "?show=waiting")
    assert detail in queue.content.decode()
    assert client.get(detail).status_code == 200
    accept = reverse("vouchers:staff_outcome_action", args=["shanghai", final.pk, "accept"])
    assert client.post(accept, {"comment": "通过"}).status_code == 302
    final.refresh_from_db()
    assert final.state == S.ACCEPTED


def test_returning_without_comments_is_a_form_error_not_a_change(
    client, final, startup_user, shanghai
):
    _filled(final, startup_user)
    services.outcome_report_submit(report=final, actor=startup_user)
    client.force_login(shanghai.manager)
    back = reverse("vouchers:staff_outcome_action", args=["shanghai", final.pk, "return"])
    assert client.post(back, {"comment": ""}).status_code == 400
    bogus = reverse("vouchers:staff_outcome_action", args=["shanghai", final.pk, "delete"])
    assert client.post(bogus, {}).status_code == 302
    final.refresh_from_db()
    assert final.state == S.SUBMITTED


def test_staff_who_are_not_program_managers_see_but_cannot_decide(
    client, final, startup_user, shanghai
):
    _filled(final, startup_user)
    services.outcome_report_submit(report=final, actor=startup_user)
    for user in (shanghai.auditor, shanghai.reviewer, shanghai.approver):
        client.force_login(user)
        assert (
            client.get(reverse("vouchers:staff_outcome", args=["shanghai", final.pk])).status_code
            == 200
        )
        accept = reverse("vouchers:staff_outcome_action", args=["shanghai", final.pk, "accept"])
        assert client.post(accept, {}).status_code == 403
    final.refresh_from_db()
    assert final.state == S.SUBMITTED


def test_another_city_and_another_company_get_404_and_change_nothing(
    client, final, startup_user, shenzhen, outsider
):
    _filled(final, startup_user)
    document = services.outcome_document_add(
        report=final,
        actor=startup_user,
        doc_type="outcome_report",
        upload=SimpleUploadedFile("r.pdf", PDF),
    )
    services.outcome_report_submit(report=final, actor=startup_user)
    client.force_login(shenzhen.manager)
    for path in (
        reverse("vouchers:staff_outcome", args=["shenzhen", final.pk]),
        reverse("vouchers:staff_outcome_document", args=["shenzhen", final.pk, document.pk]),
    ):
        assert client.get(path).status_code == 404, path
    for action in ("accept", "return"):
        path = reverse("vouchers:staff_outcome_action", args=["shenzhen", final.pk, action])
        assert client.post(path, {"comment": "x"}).status_code == 404
    # Not a member of the city in the URL either.
    path = reverse("vouchers:staff_outcome", args=["shanghai", final.pk])
    assert client.get(path).status_code == 404
    listed = client.get(reverse("vouchers:staff_outcomes", args=["shenzhen"])).content.decode()
    assert final.voucher.code not in listed
    other = UserFactory(email="other@company.test")
    services.company_create(
        actor=other,
        legal_name="别家科技有限公司",
        credit_code=credit_code_generate(random.Random(7)),
    )
    for user in (other, outsider):
        client.force_login(user)
        assert client.get(reverse("vouchers:my_outcome", args=[final.pk])).status_code == 404
        assert (
            client.post(
                reverse("vouchers:my_outcome", args=[final.pk]), {"summary": "x", "go": "save"}
            ).status_code
            == 404
        )
        assert (
            client.get(
                reverse("vouchers:my_outcome_document", args=[final.pk, document.pk])
            ).status_code
            == 404
        )
        assert (
            client.post(
                reverse("vouchers:my_outcome_document_remove", args=[final.pk, document.pk])
            ).status_code
            == 404
        )
        assert (
            final.voucher.code not in client.get(reverse("vouchers:my_outcomes")).content.decode()
        )
    final.refresh_from_db()
    assert final.state == S.SUBMITTED and final.summary.startswith("训练")
    assert OutcomeDocument.objects.filter(pk=document.pk).exists()


def _more_reports(program, n: int) -> None:
    for i in range(n):
        user = UserFactory(email=f"founder{i}@many.test")
        company = services.company_create(
            actor=user,
            legal_name=f"公司{i}",
            credit_code=credit_code_generate(random.Random(100 + i)),
        )
        voucher_issue(program=program, company=company, amount=Decimal("100000"), actor=SYSTEM)


def test_list_pages_cost_the_same_queries_for_more_reports(
    client, program, voucher, startup_user, shanghai, django_assert_max_num_queries
):
    def counted(user, url) -> int:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        client.force_login(user)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        return len(queries)

    staff_url = reverse("vouchers:staff_outcomes", args=["shanghai"])
    my_url = reverse("vouchers:my_outcomes")
    few = counted(shanghai.manager, staff_url), counted(startup_user, my_url)
    _more_reports(program, 6)
    for _i in range(4):
        extra = voucher_issue(
            program=program,
            company=voucher.company,
            amount=Decimal("100000"),
            actor=SYSTEM,
        )
        assert extra.outcome_reports.count() == 2
    many = counted(shanghai.manager, staff_url), counted(startup_user, my_url)
    assert many == few
    client.force_login(shanghai.manager)
    with django_assert_max_num_queries(14):
        client.get(staff_url)
    client.force_login(startup_user)
    with django_assert_max_num_queries(12):
        client.get(my_url)


# --- eligibility --------------------------------------------------------------------------------


def _rule(app) -> eligibility.Outcome:
    return eligibility.CATALOGUE["no_overdue_outcome_report"](app, {})


def test_an_overdue_report_keeps_the_company_out_of_the_next_round(
    final, startup_user, company, shanghai, shenzhen
):
    later = make_program(
        shanghai.city, slug="round-2", eligibility_rules=[{"type": "no_overdue_outcome_report"}]
    )
    app = complete_draft(later, company, startup_user)
    with time_machine.travel(MIDTERM_DUE - timedelta(days=1), tick=False):
        assert _rule(app).outcome == eligibility.PASS
    with time_machine.travel(MIDTERM_DUE + timedelta(days=1), tick=False):
        failed = _rule(app)
        assert failed.outcome == eligibility.FAIL
        assert final.voucher.code in failed.message_en and "成果报告" in failed.message_zh
        # Another city's programs do not look at Shanghai's reports.
        sz = make_program(shenzhen.city, slug="sz-round")
        assert _rule(complete_draft(sz, company, startup_user)).outcome == eligibility.PASS
        services.application_submit(application=app, actor=startup_user)
        app.refresh_from_db()
        assert app.eligibility == "fail"
        assert app.eligibility_outcomes.get(rule="no_overdue_outcome_report").outcome == "fail"


def test_a_submitted_report_is_not_overdue_but_a_returned_one_is(
    final, startup_user, company, shanghai
):
    app = Application(program=final.program, company=company, city=shanghai.city)
    midterm = OutcomeReport.objects.get(voucher=final.voucher, stage="midterm")
    for report in (final, midterm):
        _filled(report, startup_user)
        services.outcome_report_submit(report=report, actor=startup_user)
    with time_machine.travel(FINAL_DUE + timedelta(days=5), tick=False):
        assert _rule(app).outcome == eligibility.PASS
        services.outcome_report_return(report=final, actor=shanghai.manager, comment="补充")
        assert _rule(app).outcome == eligibility.FAIL
        services.outcome_report_submit(report=final, actor=startup_user)
        assert _rule(app).outcome == eligibility.PASS


def test_a_revoked_voucher_owes_no_report(final, company, shanghai):
    app = Application(program=final.program, company=company, city=shanghai.city)
    voucher_revoke(voucher=final.voucher, actor=shanghai.manager, reason="违规使用")
    with time_machine.travel(FINAL_DUE + timedelta(days=5), tick=False):
        assert _rule(app).outcome == eligibility.PASS


def test_the_rule_is_offered_in_the_editor_and_read_in_both_languages():
    from django.utils import translation

    assert "no_overdue_outcome_report" in eligibility.RULE_LABELS
    with translation.override("en"):
        assert (
            str(eligibility.RULE_LABELS["no_overdue_outcome_report"]) == "No overdue outcome report"
        )
        english = eligibility.rule_words({"type": "no_overdue_outcome_report"})
    with translation.override("zh-hans"):
        label = str(eligibility.RULE_LABELS["no_overdue_outcome_report"])
        chinese = eligibility.rule_words({"type": "no_overdue_outcome_report"})
    assert label != "No overdue outcome report" and "成果报告" in label
    assert "outcome report" in english and "成果报告" in chinese
    assert eligibility.rules_problem([{"type": "no_overdue_outcome_report"}]) is None


# --- reminders ----------------------------------------------------------------------------------


def test_reminders_go_once_per_report_and_stage(final, startup_user, company):
    colleague = UserFactory(email="cto@startup.test")
    company.members.add(colleague)
    midterm = OutcomeReport.objects.get(voucher=final.voucher, stage="midterm")
    soon = MIDTERM_DUE - timedelta(days=10)
    assert outcome_reminders_send(today=soon) == 2  # the mid-term report, to both members
    assert outcome_reminders_send(today=soon) == 0
    assert outcome_reminders_send(today=soon + timedelta(days=1)) == 0
    late = MIDTERM_DUE + timedelta(days=1)
    assert outcome_reminders_send(today=late) == 2
    assert outcome_reminders_send(today=late) == 0
    assert set(ReminderSent.objects.values_list("kind", "key")) == {
        ("outcome_due_soon", str(midterm.pk)),
        ("outcome_overdue", str(midterm.pk)),
    }
    subjects = [m.subject for m in mail.outbox if m.to == [startup_user.email]]
    assert len(subjects) == 2 and all(final.voucher.code in s for s in subjects)


def test_no_reminder_for_a_report_already_with_the_city(final, startup_user):
    _filled(final, startup_user)
    services.outcome_report_submit(report=final, actor=startup_user)
    OutcomeReport.objects.filter(voucher=final.voucher, stage="midterm").update(state=S.ACCEPTED)
    assert outcome_reminders_send(today=FINAL_DUE - timedelta(days=3)) == 0
    assert outcome_reminders_send(today=FINAL_DUE + timedelta(days=3)) == 0


# --- program settings ---------------------------------------------------------------------------


def test_the_program_editor_sets_when_reports_are_due(shanghai):
    from tests.vouchers.conftest import program_values

    values = program_values(
        outcome_reports_required=True, outcome_final_days=60, outcome_midterm_months=12
    )
    errors = services.program_validate(values)
    assert "outcome_midterm_months" in errors  # not before the 12-month voucher ends
    values["outcome_midterm_months"] = 6
    program = services.program_save(city=shanghai.city, actor=shanghai.manager, values=values)
    assert (program.outcome_final_days, program.outcome_midterm_months) == (60, 6)
