"""The outcome reminders as beat runs them: the task on a real Celery worker, sent twice
at once, notifies each member once per report and stage (the `ReminderSent` row is the
claim, taken under a unique constraint)."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from portal.audit import SYSTEM
from portal.models import Notification
from tests.factories import UserFactory
from tests.integration import celery_worker, wait_for
from tests.vouchers.conftest import make_company, make_program
from vouchers.ledger import voucher_issue
from vouchers.models import OutcomeReport, ReminderSent
from vouchers.tasks import outcome_reminders_send_task

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_two_runs_at_once_send_each_reminder_once(shanghai, startup_user):
    program = make_program(shanghai.city, outcome_reports_required=True, outcome_midterm_months=6)
    company = make_company(startup_user)
    company.members.add(UserFactory(email="cto@startup.test"))
    voucher = voucher_issue(
        program=program, company=company, amount=Decimal("100000"), actor=SYSTEM
    )
    today = timezone.localdate()
    # Test setup, not a workflow step: one report due in five days, one three days late.
    OutcomeReport.objects.filter(voucher=voucher, stage="final").update(
        due_on=today + timedelta(days=5)
    )
    OutcomeReport.objects.filter(voucher=voucher, stage="midterm").update(
        due_on=today - timedelta(days=3)
    )
    with celery_worker(concurrency=2):
        outcome_reminders_send_task.delay()
        outcome_reminders_send_task.delay()
        wait_for(lambda: Notification.objects.filter(kind="outcome").count() >= 4, timeout=90)
        time.sleep(3)  # the other run, had it claimed anything, would have written by now
    assert set(ReminderSent.objects.values_list("kind", flat=True)) == {
        "outcome_due_soon",
        "outcome_overdue",
    }
    assert Notification.objects.filter(kind="outcome").count() == 4  # 2 members × 2 stages
