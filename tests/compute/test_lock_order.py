"""One lock order everywhere (portal/locks.py): the pairs that deadlocked run at once
many times with no deadlock, and the guard the whole suite runs under catches a
transaction that breaks the order."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.db import OperationalError, connection, transaction

from compute.models import Redemption, RedemptionStatus, UsageRecord
from compute.services import usage_record_void
from portal.audit import audit_chain_verify, audit_record
from portal.errors import DomainError
from portal.locks import LockOrderGuard, LockOrderViolation, retry_on_deadlock
from tests.compute.conftest import record
from tests.concurrency import race
from vouchers.ledger import ledger_verify, voucher_issue, voucher_resume, voucher_suspend
from vouchers.models import Voucher

pytestmark = pytest.mark.usefixtures("eager_tasks")


def _deadlocks() -> int:
    """Deadlocks PostgreSQL has detected in this database (its statistics, which a
    backend reports within a second of its transaction): a service that retried one
    would otherwise hide it."""
    import time

    time.sleep(1.2)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def _second_voucher_with_records(w, shanghai, startup_user, n: int) -> Voucher:
    voucher = voucher_issue(
        program=w.program,
        company=w.company,
        amount=Decimal("5000.00"),
        actor=shanghai.approver,
        valid_from=date(2026, 11, 1),
    )
    Redemption.objects.create(
        voucher=voucher,
        data_center=w.dc,
        contract_ref="GA-2026-002",
        status=RedemptionStatus.ACTIVE,
        requested_by=startup_user,
    )
    records = [record(100 + i, voucher.code, amount="10.00") for i in range(n)]
    response = w.api.post("/api/v1/usage/batches", {"records": records}, format="json")
    assert response.status_code == 202
    assert UsageRecord.objects.filter(voucher=voucher).count() == n
    return voucher


@pytest.mark.django_db(transaction=True)
def test_suspending_a_voucher_while_its_data_center_voids_never_deadlocks(
    ledger_world, shanghai, startup_user, monkeypatch
):
    """Was: the suspension locked the voucher and its city row, then waited for the
    city's audit lock, held by a void waiting for the city row (2 of 28 answered 500).
    The window is widened so that the pair overlaps on every round: each audit event
    is written 50 ms after its lock is taken, and the suspension starts 20 ms late."""
    import time

    from portal import audit

    original_hash = audit.event_hash

    def slow_hash(event):
        time.sleep(0.05)
        return original_hash(event)

    monkeypatch.setattr(audit, "event_hash", slow_hash)

    def late(change):
        time.sleep(0.02)
        return change(voucher=w.voucher, actor=shanghai.manager, reason="核查")

    w = ledger_world
    rounds = 10
    other = _second_voucher_with_records(w, shanghai, startup_user, rounds)
    ids = list(
        UsageRecord.objects.filter(voucher=other).order_by("id").values_list("record_id", flat=True)
    )
    deadlocks = _deadlocks()
    failures = []
    for i, record_id in enumerate(ids):
        change = voucher_suspend if i % 2 == 0 else voucher_resume
        outcomes = race(
            lambda change=change: late(change),
            lambda rid=record_id: usage_record_void(
                data_center=w.dc, record_id=rid, reason="重复计费"
            ),
        )
        failures += [o for o in outcomes if isinstance(o, BaseException)]
    assert failures == []
    assert _deadlocks() == deadlocks  # none met, not only none shown
    assert UsageRecord.objects.filter(voucher=other, status="void").count() == rounds
    other.refresh_from_db()
    assert other.balance == other.face_value
    assert ledger_verify() == []
    assert audit_chain_verify() == []


def test_the_guard_refuses_a_row_lock_after_the_audit_lock(shanghai):
    with connection.execute_wrapper(LockOrderGuard(len(connection.atomic_blocks))):
        with pytest.raises(LockOrderViolation), transaction.atomic():
            audit_record(action="test.event", city=shanghai.city)
            list(Voucher.objects.select_for_update().filter(pk=0))
        # The audit lock taken in another transaction does not count.
        with transaction.atomic():
            audit_record(action="test.event", city=shanghai.city)
        with transaction.atomic():
            list(Voucher.objects.select_for_update().filter(pk=0))


def test_the_guard_refuses_locking_joined_rows(shanghai):
    with connection.execute_wrapper(LockOrderGuard(len(connection.atomic_blocks))):
        with pytest.raises(LockOrderViolation, match="joined"), transaction.atomic():
            list(Voucher.objects.select_for_update().select_related("city").filter(pk=0))
        with transaction.atomic():
            list(
                Voucher.objects.select_for_update(of=("self",)).select_related("city").filter(pk=0)
            )


@pytest.mark.django_db(transaction=True)
def test_a_service_that_meets_a_deadlock_is_run_again(shanghai):
    from psycopg import errors as pg_errors

    calls = []

    @retry_on_deadlock()
    def service():
        calls.append(1)
        with transaction.atomic():
            if len(calls) < 3:
                raise OperationalError("deadlock detected") from pg_errors.DeadlockDetected()
            return "done"

    assert service() == "done" and len(calls) == 3

    # Any other error goes straight to the caller, once.
    @retry_on_deadlock()
    def refused():
        calls.append(1)
        raise DomainError("no", code="conflict")

    calls.clear()
    with pytest.raises(DomainError) as err:
        refused()
    assert (err.value.code, len(calls)) == ("conflict", 1)


def test_revoking_a_staff_role_is_audited_and_keeps_the_lock_order(shanghai):
    """Was: the audit lock first, then the membership's row deleted (rule 3)."""
    from portal.models import AuditEvent, CityMembership
    from portal.services import membership_revoke

    membership = CityMembership.objects.get(user=shanghai.reviewer, city=shanghai.city)
    pk = membership.pk
    with connection.execute_wrapper(LockOrderGuard(len(connection.atomic_blocks))):
        membership_revoke(actor=shanghai.manager, membership=membership)
    assert not CityMembership.objects.filter(pk=pk).exists()
    event = AuditEvent.objects.get(action="membership.revoke")
    assert (event.target_id, event.data["user"]) == (str(pk), shanghai.reviewer.email)
    assert audit_chain_verify() == []


@pytest.mark.django_db(transaction=True)
def test_issuing_statements_while_the_data_center_voids_never_deadlocks(
    ledger_world, shanghai, startup_user, monkeypatch
):
    """The second pair issue #16 named: a statement step locked its city and data-center
    rows with it (select_related without of=), then waited for the city's audit lock,
    held by a void whose audit event needed the city row."""
    import time

    from compute.settlements import settlement_build, settlement_issue
    from portal import audit

    original_hash = audit.event_hash

    def slow_hash(event):
        time.sleep(0.05)
        return original_hash(event)

    w = ledger_world
    rounds = 6
    other = _second_voucher_with_records(w, shanghai, startup_user, rounds)
    ids = list(
        UsageRecord.objects.filter(voucher=other).order_by("id").values_list("record_id", flat=True)
    )
    drafts = [
        settlement_build(city=shanghai.city, data_center=w.dc, period=date(2025, month, 1))
        for month in range(1, rounds + 1)
    ]
    monkeypatch.setattr(audit, "event_hash", slow_hash)

    def late_issue(draft):
        time.sleep(0.02)
        return settlement_issue(settlement=draft, actor=shanghai.manager)

    deadlocks = _deadlocks()
    failures = []
    for draft, record_id in zip(drafts, ids, strict=True):
        outcomes = race(
            lambda draft=draft: late_issue(draft),
            lambda rid=record_id: usage_record_void(
                data_center=w.dc, record_id=rid, reason="重复计费"
            ),
        )
        failures += [o for o in outcomes if isinstance(o, BaseException)]
    assert failures == []
    assert _deadlocks() == deadlocks  # none met, not only none shown
    assert all(d.__class__.objects.get(pk=d.pk).status == "issued" for d in drafts)
    assert ledger_verify() == []
    assert audit_chain_verify() == []
