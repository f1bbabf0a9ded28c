"""Faults survived, nothing lost or doubled (issue #16 item 5): each test starts the real
local process it breaks — a private Redis, a Celery worker, PostgreSQL connections, a
data center's feed — breaks it the way production would, and counts what came out
against an independent tally.

Every record here is 10.00 of domestic compute at the program's 30%: 3.00 covered each,
so a tally of records is a tally of money.
"""

from __future__ import annotations

import copy
import itertools
import random
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal

import httpx
import psycopg
import pytest
from django.core.management import call_command
from django.db import OperationalError, connection
from django.utils import timezone

from compute import batches
from compute.models import BatchStatus, UsageBatch, UsageRecord
from portal import ratelimit
from portal.locks import AUDIT_CHAIN
from portal.models import AuditEvent
from tests.compute.conftest import record
from tests.compute.faults import assert_charged_once
from tests.factories import UserFactory
from tests.integration import (
    _database_url,
    celery_broker,
    celery_worker,
    kill_worker,
    private_redis,
    wait_for,
)
from tests.vouchers.conftest import complete_draft, program_values
from vouchers import services
from vouchers.credit_code import credit_code_generate
from vouchers.ledger import ledger_verify
from vouchers.models import Application, EntryKind, LedgerEntry, Program, Voucher

WORKER_APP = "suanli-faults-worker"  # application_name of the workers' connections


# --- helpers --------------------------------------------------------------------------------


@pytest.fixture
def redis_server(tmp_path, settings):
    """A private Redis as the broker, the cache and the rate limiter's store, for this
    process and for the workers it starts: the test may kill it."""
    with private_redis(tmp_path / "redis") as server, celery_broker(server.url):
        settings.REDIS_URL = server.url
        caches = copy.deepcopy(settings.CACHES)
        caches["default"]["LOCATION"] = server.url
        settings.CACHES = caches
        ratelimit.reset()
        try:
            yield server
        finally:
            ratelimit.reset()


@contextmanager
def holding(sql: str, params: list):
    """Another session takes a lock and holds it until the block ends; yields its pid."""
    with psycopg.connect(_database_url()) as conn:
        conn.execute(sql, params)
        try:
            yield conn.info.backend_pid
        finally:
            conn.rollback()


def waiting_on(holder: int) -> list[tuple[int, str]]:
    """(pid, application_name) of the sessions waiting for a lock `holder` holds."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, application_name FROM pg_stat_activity"
            " WHERE %s = ANY(pg_blocking_pids(pid)) ORDER BY pid",
            [holder],
        )
        return cursor.fetchall()


def terminate(*, pids: tuple[int, ...] | list[int] = (), application_name: str = "") -> list[int]:
    """pg_terminate_backend: what a PostgreSQL restart does to each connection."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND (pid = ANY(%s) OR application_name = %s)",
            [list(pids), application_name or None],
        )
        return [pid for pid, _ok in cursor.fetchall()]


def batch_state(batch_id: int) -> tuple[str, int]:
    return tuple(UsageBatch.objects.filter(pk=batch_id).values_list("status", "attempts").get())


# --- 1. Redis killed (and hung) while data centers push ---------------------------------------


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_pushes_get_202_while_redis_is_down_and_every_batch_is_applied_once(
    ledger_world, live_server, redis_server
):
    w = ledger_world
    numbers = itertools.count()
    pushed: dict[int, list[str]] = {}

    def push(client: httpx.Client, *, within: float) -> int:
        records = [record(next(numbers), w.voucher.code, amount="10.00") for _ in range(20)]
        started = time.monotonic()
        response = client.post("/api/v1/usage/batches", json={"records": records})
        took = time.monotonic() - started
        assert response.status_code == 202, response.text
        assert took < within, f"the push took {took:.1f} s"
        batch_id = response.json()["id"]
        pushed[batch_id] = [r["record_id"] for r in records]
        return batch_id

    headers = {"Authorization": f"Bearer {w.key}"}
    with (
        celery_worker(concurrency=1),
        httpx.Client(base_url=live_server.url, headers=headers, timeout=30) as client,
    ):
        # Redis up: stored, enqueued, applied.
        first = push(client, within=5)
        wait_for(lambda: batch_state(first)[0] == BatchStatus.DONE, timeout=30)

        # Redis killed: the batch is in PostgreSQL, its task is not on the broker. The
        # rate limits fail open and nothing on the API's path uses the (Redis) cache.
        redis_server.kill()
        dead = [push(client, within=3) for _ in range(3)]
        assert not UsageBatch.objects.filter(pk__in=dead, enqueued_at__isnull=False).exists()
        assert client.get(f"/api/v1/usage/batches/{dead[0]}").status_code == 200
        assert client.get("/api/v1/usage/records").status_code == 200
        wrong_key = client.get("/api/v1/usage/records", headers={"Authorization": "Bearer x"})
        assert wrong_key.status_code == 401  # the failed-authentication limit fails open too

        # Redis back, but hung: connections are accepted and never answered. A publish
        # gives up (portal/settings.py, CELERY_BROKER_TRANSPORT_OPTIONS) instead of
        # holding the request for ever. Resumed, Redis may still run the publishes it
        # had buffered: those batches get two tasks, and are applied once.
        redis_server.start()
        redis_server.pause()
        try:
            hung = [push(client, within=8) for _ in range(2)]
        finally:
            redis_server.resume()

        # The sweeper enqueues what never reached the broker (once past OUTBOX_AFTER).
        UsageBatch.objects.filter(pk__in=dead + hung).update(
            created_at=timezone.now() - batches.OUTBOX_AFTER - timedelta(seconds=1)
        )
        outcome = batches.usage_batches_sweep(stale_after=timedelta(minutes=10))
        assert set(dead) <= set(outcome.enqueued) <= set(dead + hung)
        wait_for(
            lambda: set(UsageBatch.objects.values_list("status", flat=True)) == {BatchStatus.DONE},
            timeout=60,
        )
        assert batches.usage_batches_sweep(stale_after=timedelta(0)).enqueued == []

    for batch in UsageBatch.objects.filter(pk__in=pushed):
        assert (batch.accepted, batch.duplicate, batch.rejected) == (20, 0, 0)
    assert_charged_once(w, [r for ids in pushed.values() for r in ids])


# --- 2. A worker SIGKILLed mid-batch, twice in a row ----------------------------------------


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_batch_twice_charges_each_record_once(ledger_world, redis_server):
    w = ledger_world
    records = [record(i, w.voucher.code, amount="10.00") for i in range(300)]
    response = w.api.post("/api/v1/usage/batches", {"records": records}, format="json")
    assert response.status_code == 202, response.content
    batch_id = response.json()["id"]
    # PostgreSQL notices a dead client within 0.2 s even while its session waits for a
    # lock, and rolls its transaction back (without this the session would wait for the
    # lock, and die only when it got it).
    options = {
        "application_name": WORKER_APP,
        "options": "-c client_connection_check_interval=200",
    }
    lock = "SELECT 1 FROM vouchers_voucher WHERE id = %s FOR UPDATE"
    with holding(lock, [w.voucher.pk]) as holder:
        for attempt in (1, 2):
            with celery_worker(concurrency=1, database_options=options) as worker:
                # Its task died with the last worker (acks_late keeps it unacknowledged
                # on the broker for the visibility timeout): the sweeper sends it again.
                assert batches.usage_batches_sweep(stale_after=timedelta(0)).enqueued == [batch_id]
                # Inside usage_batch_apply: records written, waiting for the voucher.
                waiters = wait_for(lambda: waiting_on(holder), timeout=30)
                assert [name for _pid, name in waiters] == [WORKER_APP]
                assert batch_state(batch_id) == (BatchStatus.PROCESSING, attempt)
                kill_worker(worker)
            wait_for(lambda: not waiting_on(holder), timeout=10)
            assert not UsageRecord.objects.exists()
    with celery_worker(concurrency=1):
        assert batches.usage_batches_sweep(stale_after=timedelta(0)).enqueued == [batch_id]
        wait_for(lambda: batch_state(batch_id)[0] == BatchStatus.DONE, timeout=30)
    assert batch_state(batch_id) == (BatchStatus.DONE, 3)
    assert_charged_once(w, [r["record_id"] for r in records])


# --- 3. PostgreSQL "restarted": every connection of the application terminated ---------------


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_connections_cut_mid_apply_the_task_retries_and_charges_each_record_once(
    ledger_world, redis_server
):
    w = ledger_world
    records = [record(i, w.voucher.code, amount="10.00") for i in range(200)]
    lock = "SELECT 1 FROM vouchers_voucher WHERE id = %s FOR UPDATE"
    with celery_worker(concurrency=1, database_options={"application_name": WORKER_APP}):
        with holding(lock, [w.voucher.pk]) as holder:
            response = w.api.post("/api/v1/usage/batches", {"records": records}, format="json")
            assert response.status_code == 202, response.content
            batch_id = response.json()["id"]
            first = wait_for(lambda: waiting_on(holder), timeout=30)
            assert terminate(application_name=WORKER_APP)
            # The task fails with the connection, is retried (compute.tasks) on a new one,
            # and is back inside the apply: nothing of the first attempt was kept.
            wait_for(lambda: waiting_on(holder) not in ([], first), timeout=30)
            assert batch_state(batch_id) == (BatchStatus.PROCESSING, 2)
            assert not UsageRecord.objects.exists()
        wait_for(lambda: batch_state(batch_id)[0] == BatchStatus.DONE, timeout=30)
    assert_charged_once(w, [r["record_id"] for r in records])


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_connection_cut_mid_push_stores_nothing_and_the_retried_push_is_stored_once(
    ledger_world, live_server, redis_server
):
    w = ledger_world
    records = [record(i, w.voucher.code, amount="10.00") for i in range(50)]
    headers = {"Authorization": f"Bearer {w.key}", "Idempotency-Key": "push-1"}
    answers: list[httpx.Response] = []

    def push() -> None:
        with httpx.Client(base_url=live_server.url, headers=headers, timeout=30) as client:
            answers.append(client.post("/api/v1/usage/batches", json={"records": records}))

    # Inserting a batch waits for this lock: the push is inside its transaction.
    with holding("LOCK TABLE compute_usagebatch IN SHARE MODE", []) as holder:
        thread = threading.Thread(target=push)
        thread.start()
        victims = wait_for(lambda: waiting_on(holder), timeout=10)
        assert terminate(pids=[pid for pid, _name in victims])
        thread.join(timeout=30)
    # 503 with Retry-After (not a 2xx: nothing was stored), so the client sends it again.
    assert answers[0].status_code == 503
    assert answers[0].json()["error"]["code"] == "unavailable"
    assert answers[0].headers["Retry-After"] == "5"
    assert not UsageBatch.objects.exists()
    with celery_worker(concurrency=1):
        push()
        push()
        # The same key and bytes: the first batch again, with 200 (docs/api.md).
        assert [a.status_code for a in answers[1:]] == [202, 200], answers[-1].text
        assert answers[1].json()["id"] == answers[2].json()["id"]
        batch_id = answers[1].json()["id"]
        wait_for(lambda: batch_state(batch_id)[0] == BatchStatus.DONE, timeout=30)
    assert UsageBatch.objects.count() == 1
    assert_charged_once(w, [r["record_id"] for r in records])


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_connection_cut_mid_approval_leaves_no_voucher_and_approving_again_issues_one(
    world, redis_server
):
    sh = world["shanghai"]
    program = services.program_save(city=sh.city, actor=sh.manager, values=program_values())
    user = UserFactory(email="restart@startup.test")
    company = services.company_create(
        actor=user, legal_name="重启公司", credit_code=credit_code_generate(random.Random(16))
    )
    app = complete_draft(program, company, user, amount="300000")
    services.application_submit(application=app, actor=user)
    services.application_start_screening(application=app, actor=sh.reviewer)
    services.application_pass_screening(application=app, actor=sh.reviewer)
    state_before = Application.objects.get(pk=app.pk).state
    events_before = AuditEvent.objects.count()
    outcome: dict[str, object] = {}

    def approve() -> None:
        try:
            outcome["voucher"] = services.application_approve(
                application=Application.objects.get(pk=app.pk),
                actor=sh.approver,
                amount=Decimal("300000"),
                reason="Scaled to the plan",
            )
        except Exception as error:  # reported to the test
            outcome["error"] = error
        finally:
            connection.close()

    # The city's audit chain is the last lock an approval takes: by then the voucher, its
    # issue entry and the state change are written, uncommitted.
    audit_lock = "SELECT pg_advisory_xact_lock(%s, %s)"
    with holding(audit_lock, [AUDIT_CHAIN, sh.city.pk]) as holder:
        thread = threading.Thread(target=approve)
        thread.start()
        victims = wait_for(lambda: waiting_on(holder), timeout=10)
        assert terminate(pids=[pid for pid, _name in victims])
        thread.join(timeout=30)
    assert isinstance(outcome.get("error"), OperationalError), outcome
    assert "voucher" not in outcome
    assert Application.objects.get(pk=app.pk).state == state_before
    assert not Voucher.objects.filter(company=company).exists()
    assert not LedgerEntry.objects.filter(voucher__company=company).exists()
    assert Program.objects.get(pk=program.pk).allocated == Decimal("0.00")
    assert AuditEvent.objects.count() == events_before

    voucher = services.application_approve(
        application=Application.objects.get(pk=app.pk),
        actor=sh.approver,
        amount=Decimal("300000"),
        reason="Scaled to the plan",
    )
    assert Application.objects.get(pk=app.pk).state == "approved"
    assert list(Voucher.objects.filter(company=company)) == [voucher]
    issued = LedgerEntry.objects.filter(voucher=voucher)
    assert [(e.kind, e.amount) for e in issued] == [(EntryKind.ISSUE, Decimal("300000.00"))]
    assert AuditEvent.objects.filter(action="application.approve").count() == 1
    assert Program.objects.get(pk=program.pk).allocated == Decimal("300000.00")
    assert ledger_verify() == []
    call_command("verify_ledger")
    call_command("verify_audit")
