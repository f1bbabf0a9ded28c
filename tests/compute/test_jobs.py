"""Periodic jobs: expiry at the right Shanghai moment, reconciliation, reminders."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import time_machine
from django.core import mail

from compute.jobs import ledger_reconcile
from compute.models import Discrepancy
from vouchers.jobs import reminders_send, vouchers_expire_due
from vouchers.models import EntryKind, Program, Voucher

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_expiry_waits_for_the_last_grace_day_in_shanghai(ledger_world):
    w = ledger_world  # valid until 2027-10-31, 30 grace days: charged through 2027-11-30
    Program.objects.filter(pk=w.other_program.pk).update(grace_days=60)  # grace is per program
    # 23:59 on 30 Nov in Shanghai: the last day of grace, still charged.
    with time_machine.travel(datetime(2027, 11, 30, 23, 59, tzinfo=SHANGHAI), tick=False):
        assert vouchers_expire_due() == []
    # 00:01 on 1 Dec in Shanghai is still 30 Nov in UTC: Shanghai's date decides.
    with time_machine.travel(datetime(2027, 12, 1, 0, 1, tzinfo=SHANGHAI), tick=False):
        assert vouchers_expire_due() == [w.voucher.code]
        assert vouchers_expire_due() == []  # twice changes nothing
    w.voucher.refresh_from_db()
    assert (w.voucher.status, w.voucher.balance) == ("expired", Decimal("0.00"))
    entry = w.voucher.entries.last()
    assert (entry.kind, entry.amount) == (EntryKind.EXPIRE, Decimal("-1000.00"))
    assert Program.objects.get(pk=w.program.pk).allocated == Decimal("0.00")


def test_reconciliation_records_and_resolves_discrepancies(ledger_world):
    from compute.tasks import ledger_reconcile_task

    assert ledger_reconcile() == []
    Voucher.objects.filter(pk=ledger_world.voucher.pk).update(balance=Decimal("990.00"))
    assert ledger_reconcile_task.apply().get() == 1  # the beat's task, in-process
    found = list(Discrepancy.objects.filter(resolved_at__isnull=True))
    assert [d.kind for d in found] == ["ledger"]
    assert found[0].city_id == ledger_world.voucher.city_id
    assert ledger_reconcile() == []  # already recorded, not twice
    Voucher.objects.filter(pk=ledger_world.voucher.pk).update(balance=Decimal("1000.00"))
    ledger_reconcile()
    assert Discrepancy.objects.get().resolved_at is not None


def test_reconciliation_compares_usage_with_the_ledger_per_data_center(
    ledger_world, eager_tasks, django_capture_on_commit_callbacks
):
    from compute.models import UsageRecord
    from tests.compute.conftest import record

    w = ledger_world
    with django_capture_on_commit_callbacks(execute=True):
        w.api.post("/api/v1/usage/batches", {"records": [record(1, w.voucher.code)]}, format="json")
    assert ledger_reconcile() == []
    UsageRecord.objects.update(covered_amount=Decimal("31.00"))  # a record altered in place
    found = ledger_reconcile()
    # verify_ledger finds the charge no longer matching its record; the totals differ.
    assert [d.kind for d in found] == ["ledger", "data_center_totals"]
    assert "charge entry" in found[0].detail and found[0].voucher_id == w.voucher.pk
    assert found[1].data_center_id == w.dc.pk
    assert "31.00" in found[1].detail


def test_reminders_go_out_once_in_the_users_language(ledger_world, startup_user):
    w = ledger_world
    startup_user.preferred_language = "en"
    startup_user.save()
    Voucher.objects.filter(pk=w.voucher.pk).update(balance=Decimal("150.00"))  # 85% used
    with time_machine.travel(datetime(2026, 12, 1, 9, 0, tzinfo=SHANGHAI), tick=False):
        assert reminders_send() == 1
        assert reminders_send() == 0
    assert mail.outbox[0].to == [startup_user.email]
    assert "80% used" in mail.outbox[0].subject
    with time_machine.travel(datetime(2027, 10, 10, 9, 0, tzinfo=SHANGHAI), tick=False):
        reminders_send()
    assert any("ends soon" in m.subject for m in mail.outbox)


def test_voucher_reminders_give_the_citys_date_and_link_the_vouchers_page(
    ledger_world, startup_user, settings
):
    """The voucher's last day is the city's date, the zone named; the link is the
    voucher's own page (compute's, through portal.links) at SITE_URL."""
    settings.SITE_URL = "http://demo.test:8123"
    w = ledger_world
    startup_user.preferred_language = "en"
    startup_user.save()
    Voucher.objects.filter(pk=w.voucher.pk).update(balance=Decimal("150.00"))
    with time_machine.travel(datetime(2026, 12, 1, 9, 0, tzinfo=SHANGHAI), tick=False):
        reminders_send()
    (body,) = [m.body for m in mail.outbox if "80% used" in m.subject]
    voucher = Voucher.objects.get(pk=w.voucher.pk)
    assert f"valid until {voucher.valid_until.isoformat()} (Asia/Shanghai)." in body
    assert body.endswith(f"http://demo.test:8123/my/vouchers/{voucher.code}/")
