"""Faults survived, nothing lost or doubled (issue #16 item 5): each test starts the real
local process it breaks — a private Redis, a Celery worker, PostgreSQL connections, a
data center's feed — breaks it the way production would, and counts what came out
against an independent tally.

Every record here is 10.00 of domestic compute at the program's 30%: 3.00 covered each,
so a tally of records is a tally of money.
"""

from __future__ import annotations

import contextlib
import copy
import http.server
import itertools
import json
import random
import threading
import time
import tracemalloc
import zlib
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

import httpx
import psycopg
import pytest
from django.core.management import call_command
from django.db import OperationalError, connection
from django.utils import timezone

from compute import batches
from compute.models import BatchStatus, DataCenter, SyncRun, UsageBatch, UsageRecord
from compute.sync import FeedError, SyncPolicy, _Deadline, _fetch, feed_sync
from portal import ratelimit
from portal.locks import AUDIT_CHAIN
from portal.models import AuditEvent
from tests.compute.conftest import record
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

COVERED = Decimal("3.00")  # per record of 10.00 (see the module docstring)
FACE = Decimal("1000.00")  # ledger_world's voucher
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


def assert_charged_once(w, record_ids: list[str], *, balance_before: Decimal = FACE) -> None:
    """Each record stored once and charged once; the voucher's balance is the tally."""
    stored = list(UsageRecord.objects.filter(data_center=w.dc).values_list("record_id", flat=True))
    assert sorted(stored) == sorted(record_ids)
    charges = LedgerEntry.objects.filter(voucher=w.voucher, kind=EntryKind.CHARGE)
    assert charges.count() == len(record_ids)
    assert -sum(e.amount for e in charges) == COVERED * len(record_ids)
    w.voucher.refresh_from_db()
    assert w.voucher.balance == balance_before - COVERED * len(record_ids)
    assert ledger_verify() == []
    call_command("verify_ledger")
    call_command("verify_audit")


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


# --- 4. A data center's feed that hangs, returns garbage or floods ----------------------------

STREAM_CAP = 256 * 1024 * 1024  # what the "endless" answers send at most, then stop
TRICKLE_FOR = 15.0  # seconds a trickling answer goes on, then it ends (as garbage)


class FeedHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FeedServer

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests += 1
        # A client that gives up (as the bounded one does) breaks the connection.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            getattr(self, f"answer_{self.server.mode}")()

    def _headers(self, **fields: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        for name, value in fields.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.server.sent += len(data)

    def answer_good(self) -> None:
        body = json.dumps(self.server.page).encode()
        self._headers(Content_Length=str(len(body)))
        self.wfile.write(body)

    def answer_gzipped(self) -> None:
        body = zlib.compress(json.dumps(self.server.page).encode(), wbits=31)
        self._headers(Content_Length=str(len(body)), Content_Encoding="gzip")
        self.wfile.write(body)

    def answer_hang(self) -> None:
        self.server.stopped.wait(30)  # far beyond any timeout of the client

    def answer_garbage(self) -> None:
        body = b"<html><body>502 Bad Gateway, or so</body></html>"
        self._headers(Content_Length=str(len(body)))
        self.wfile.write(body)

    def answer_huge(self) -> None:
        self._headers(Content_Length=str(10 * 1024**3))  # 10 GiB announced
        block = b"[" * 65536
        while self.server.sent < STREAM_CAP and not self.server.stopped.is_set():
            self.wfile.write(block)
            self.server.sent += len(block)

    def answer_endless(self) -> None:
        self._headers(Transfer_Encoding="chunked")
        block = b" " * 65536
        while self.server.sent < STREAM_CAP and not self.server.stopped.is_set():
            self._chunk(block)
        self.wfile.write(b"0\r\n\r\n")

    def answer_bomb(self) -> None:
        # gzip of endless zeros: ~1 kB on the wire per MiB unpacked.
        self._headers(Transfer_Encoding="chunked", Content_Encoding="gzip")
        packer, zeros = zlib.compressobj(9, zlib.DEFLATED, 31), bytes(1024 * 1024)
        unpacked = 0
        while unpacked < 10 * 1024**3 and not self.server.stopped.is_set():
            self._chunk(packer.compress(zeros) + packer.flush(zlib.Z_SYNC_FLUSH))
            unpacked += len(zeros)
        self.wfile.write(b"0\r\n\r\n")

    def answer_trickle(self) -> None:
        # A byte every 0.1 s: no single read ever times out.
        self._headers(Transfer_Encoding="chunked")
        ends = time.monotonic() + TRICKLE_FOR
        while time.monotonic() < ends and not self.server.stopped.wait(0.1):
            self._chunk(b" ")
        self.wfile.write(b"0\r\n\r\n")

    def answer_slow_headers(self) -> None:
        self.wfile.write(b"HTTP/1.1 200 OK\r\n")
        ends = time.monotonic() + TRICKLE_FOR
        while time.monotonic() < ends and not self.server.stopped.wait(0.1):
            self.wfile.write(b"X: y\r\n")
        self.wfile.write(b"Content-Length: 0\r\n\r\n")


class FeedServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FeedHandler)
        self.mode = "good"
        self.page: dict = {"records": [], "next_cursor": "end", "has_more": False}
        self.requests = 0
        self.sent = 0
        self.stopped = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/feed"


@pytest.fixture
def feed_server():
    server = FeedServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.stopped.set()
    server.shutdown()
    server.server_close()


# Small bounds so that each fault ends fast: 0.5 s per read, 1.5 s per page, 1 MiB.
BOUNDED = SyncPolicy(
    page_size=10,
    timeout=0.5,
    page_deadline=1.5,
    max_page_bytes=1024 * 1024,
    attempts=2,
    backoff=0.01,
)


def fetch_once(
    server: FeedServer, policy: SyncPolicy = BOUNDED
) -> tuple[dict | Exception, float, int]:
    """One page fetched by compute.sync, in a thread so that an unbounded fetch fails the
    test instead of hanging it; (page or error, seconds, peak bytes allocated)."""
    dc = SimpleNamespace(feed_url=server.url, feed_token="t")
    result: list = []

    def run() -> None:
        with httpx.Client() as client:
            try:
                result.append(_fetch(client, dc, "", policy, _Deadline()))
            except Exception as error:  # reported to the test
                result.append(error)

    tracemalloc.start()
    started = time.monotonic()
    try:
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(timeout=10)
        took = time.monotonic() - started
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result, f"the fetch was still running after {took:.0f} s"
    return result[0], took, peak


def test_a_page_announced_larger_than_the_limit_is_refused_before_its_body(feed_server):
    feed_server.mode = "huge"
    error, took, peak = fetch_once(feed_server)
    assert isinstance(error, FeedError), error
    assert "larger than 1048576 bytes (Content-Length 10737418240)" in str(error)
    assert took < 1.0
    assert peak < 4 * 1024 * 1024


@pytest.mark.parametrize("mode", ["endless", "bomb"])
def test_an_endless_body_is_cut_at_the_size_limit_in_bounded_memory(feed_server, mode):
    feed_server.mode = mode
    error, took, peak = fetch_once(feed_server)
    assert isinstance(error, FeedError), error
    assert str(error) == "the page is larger than 1048576 bytes"
    assert took < 1.5
    # The page limit plus the join of its parts, and httpx's chunks: never the stream.
    assert peak < 8 * 1024 * 1024, peak


@pytest.mark.parametrize("mode", ["trickle", "slow_headers"])
def test_a_page_trickled_just_fast_enough_for_each_read_is_cut_at_its_deadline(feed_server, mode):
    feed_server.mode = mode
    error, took, _peak = fetch_once(feed_server)
    assert isinstance(error, FeedError), error
    assert str(error) == "the page took longer than 1.5 s"
    assert 1.4 < took < 2.5


@pytest.mark.parametrize("mode", ["good", "gzipped"])
def test_a_page_within_the_bounds_is_read_plain_or_gzipped(feed_server, mode):
    feed_server.mode = mode
    feed_server.page = {"records": [{"amount": 1.5}], "next_cursor": "c2", "has_more": True}
    page, _took, _peak = fetch_once(feed_server)
    assert page == {"records": [{"amount": Decimal("1.5")}], "next_cursor": "c2", "has_more": True}


def test_the_page_size_limit_comes_from_the_settings(settings):
    assert SyncPolicy().max_page_bytes == 20 * 1024 * 1024
    settings.FEED_MAX_PAGE_BYTES = 1234
    settings.FEED_SYNC = {"timeout": 3.0, "page_deadline": 9.0}
    policy = SyncPolicy.from_settings()
    assert (policy.max_page_bytes, policy.timeout, policy.page_deadline) == (1234, 3.0, 9.0)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_feed_that_hangs_floods_or_sends_garbage_is_unhealthy_until_it_is_good_again(
    ledger_world, feed_server, eager_tasks
):
    w = ledger_world
    DataCenter.objects.filter(pk=w.dc.pk).update(feed_url=feed_server.url, feed_token="t")
    faults = {
        "hang": "ReadTimeout",
        "garbage": "not valid JSON",
        "huge": "larger than 1048576 bytes",
        "endless": "larger than 1048576 bytes",
        "bomb": "larger than 1048576 bytes",
        "trickle": "took longer than 1.5 s",
    }
    for mode, reason in faults.items():
        feed_server.mode = mode
        started = time.monotonic()
        run = feed_sync(data_center_id=w.dc.pk, policy=BOUNDED)
        took = time.monotonic() - started
        # Two attempts of at most 1.5 s each (and a little for the backoff).
        assert took < 4.0, (mode, took)
        assert (run.outcome, run.pages) == ("failed", 0), mode
        assert reason in run.error, (mode, run.error)
        dc = DataCenter.objects.get(pk=w.dc.pk)
        assert (dc.feed_healthy, dc.feed_cursor) == (False, ""), mode
        assert reason in dc.feed_error, (mode, dc.feed_error)
    assert not UsageBatch.objects.exists()

    feed_server.mode = "good"
    records = [record(i, w.voucher.code, amount="10.00") for i in range(8)]
    feed_server.page = {"records": records, "next_cursor": "c1", "has_more": False}
    run = feed_sync(data_center_id=w.dc.pk, policy=BOUNDED)
    assert (run.outcome, run.pages, run.records) == ("ok", 1, 8)
    dc = DataCenter.objects.get(pk=w.dc.pk)
    assert (dc.feed_healthy, dc.feed_error, dc.feed_cursor) == (True, "", "c1")
    assert SyncRun.objects.filter(outcome="failed").count() == len(faults)
    assert_charged_once(w, [r["record_id"] for r in records])
