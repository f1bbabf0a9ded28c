"""Outcome reports and the next round: the eligibility rule `no_overdue_outcome_report`,
the reminders before and after the due date (once each) and the program's settings."""

from __future__ import annotations

from datetime import timedelta

import time_machine
from django.conf import settings
from django.core import mail
from django.urls import reverse

from tests.factories import UserFactory
from tests.vouchers.conftest import complete_draft, make_program
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
from vouchers import eligibility, services
from vouchers.jobs import outcome_reminders_send
from vouchers.ledger import voucher_revoke
from vouchers.models import (
    Application,
    OutcomeReport,
    ReminderSent,
)

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
        filled(report, startup_user)
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
    filled(final, startup_user)
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


def test_the_editor_offers_the_settings_and_the_rule_and_the_program_page_states_them(
    client, program, shanghai
):
    client.force_login(shanghai.manager)
    editor = client.get(
        reverse("vouchers:staff_program_edit", args=["shanghai", program.slug])
    ).content.decode()
    for name in ("outcome_reports_required", "outcome_final_days", "outcome_midterm_months"):
        assert f'name="{name}"' in editor
    assert 'value="no_overdue_outcome_report"' in editor
    url = reverse("vouchers:program", args=["shanghai", program.slug])
    client.logout()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    page = client.get(url).content.decode()
    assert "A final report within 30 days after the voucher ends" in page
    assert "a mid-term report 6 months after it starts" in page
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    page = client.get(url).content.decode()
    assert "算力券到期后 30 天内提交结项报告" in page and "生效 6 个月后提交中期报告" in page
