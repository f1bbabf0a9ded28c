"""Usage through the real HTTP API and a real Celery worker, with concurrent clients."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from django.utils import timezone

from compute.models import BatchStatus, UsageBatch, UsageRecord
from compute.tasks import usage_batches_sweep
from portal.audit import SYSTEM
from tests.compute.conftest import record
from tests.concurrency import outcome_codes, race
from tests.integration import celery_worker, wait_for
from vouchers.ledger import ledger_verify, voucher_issue
from vouchers.models import EntryKind, LedgerEntry, Voucher

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _done(client, ids):
    def check():
        states = [client.get(f"/api/v1/usage/batches/{i}").json()["status"] for i in ids]
        return all(s == "done" for s in states)

    return check


def test_overlapping_batches_from_many_threads_never_overspend(ledger_world, live_server):
    w = ledger_world
    # A second and third voucher of the same company, redeemed at the same data center.
    from compute.models import Redemption, RedemptionStatus

    vouchers = [w.voucher]
    for amount in ("400.00", "250.00"):
        v = voucher_issue(
            program=w.program,
            company=w.company,
            amount=Decimal(amount),
            actor=SYSTEM,
            valid_from=w.voucher.valid_from,
        )
        Redemption.objects.create(
            voucher=v, data_center=w.dc, contract_ref="GA-X", status=RedemptionStatus.ACTIVE
        )
        vouchers.append(v)
    headers = {"Authorization": f"Bearer {w.key}"}
    batch_ids: list[int] = []

    def pusher(thread: int):
        def push():
            with httpx.Client(base_url=live_server.url, headers=headers, timeout=30) as client:
                for b in range(3):
                    # Records 0..59 are shared by every thread (duplicates of each other);
                    # 1000 + … are this thread's own.
                    records = [
                        record(i, vouchers[i % 3].code, amount="50.00")
                        for i in range(b * 20, b * 20 + 20)
                    ] + [
                        record(
                            1000 + thread * 100 + b * 20 + i, vouchers[i % 3].code, amount="75.00"
                        )
                        for i in range(20)
                    ]
                    response = client.post("/api/v1/usage/batches", json={"records": records})
                    assert response.status_code == 202, response.text
                    batch_ids.append(response.json()["id"])

        return push

    with celery_worker(concurrency=2):
        assert outcome_codes(race(*(pusher(t) for t in range(4)))) == ["done"] * 4
        with httpx.Client(base_url=live_server.url, headers=headers, timeout=30) as client:
            wait_for(_done(client, batch_ids), timeout=90)
            results = [
                client.get(f"/api/v1/usage/batches/{i}").json()["results"] for i in batch_ids
            ]

    flat = [r for batch in results for r in batch]
    accepted = [r for r in flat if r["status"] == "accepted"]
    # Each distinct record charged exactly once; every repeat is a duplicate.
    assert len(accepted) == 60 + 4 * 60
    assert len({r["record_id"] for r in accepted}) == len(accepted)
    assert sum(r["status"] == "duplicate" for r in flat) == 3 * 60
    assert UsageRecord.objects.count() == len(accepted)
    for v in vouchers:
        v.refresh_from_db()
        assert v.balance >= 0
        charged = -sum(
            e.amount for e in LedgerEntry.objects.filter(voucher=v, kind=EntryKind.CHARGE)
        )
        assert v.face_value - charged == v.balance
    covered = sum(Decimal(r["covered_amount"]) for r in accepted)
    assert covered == sum(v.face_value - v.balance for v in vouchers)
    # 300 records asking for ≥15.00 each exceed the 1,650.00 on the vouchers: all spent.
    assert all(
        v.balance == 0 and v.status == "exhausted"
        for v in Voucher.objects.all()
        if v.program_id == w.program.pk
    )
    assert ledger_verify() == []


def test_sweeper_hands_a_stale_batch_to_the_worker(ledger_world):
    w = ledger_world
    batch = UsageBatch.objects.create(
        data_center=w.dc,
        body_hash="x",
        received=1,
        body=json.dumps({"records": [record(1, w.voucher.code)]}),
        status=BatchStatus.PROCESSING,  # its worker died mid-batch
    )
    UsageBatch.objects.filter(pk=batch.pk).update(created_at=timezone.now() - timedelta(hours=1))
    with celery_worker(concurrency=1):
        assert usage_batches_sweep(minutes=10) == 1
        wait_for(lambda: UsageBatch.objects.get(pk=batch.pk).status == BatchStatus.DONE)
    w.voucher.refresh_from_db()
    assert w.voucher.balance == Decimal("970.00")
    # Sweeping again finds nothing; applying again would change nothing.
    assert usage_batches_sweep(minutes=10) == 0


def test_simulate_push_bills_over_http(ledger_world, live_server, capsys):
    from django.core.management import call_command

    w = ledger_world
    with celery_worker(concurrency=1):
        call_command("simulate_push", "guian", url=live_server.url, records=25, seed=7)
    out = capsys.readouterr().out
    assert "25 accepted" in out
    w.voucher.refresh_from_db()
    assert w.voucher.balance < Decimal("1000.00")
    assert UsageRecord.objects.filter(voucher=w.voucher).count() == 25
    assert ledger_verify() == []


def test_sync_survives_a_worker_killed_mid_run(ledger_world):
    import time as _time

    from django.db import connection

    from compute.models import SyncRun
    from compute.simulator import DataCenterSimulator, serve
    from compute.sync import _LOCK_NAMESPACE
    from compute.tasks import feed_sync_task
    from tests.integration import kill_worker

    w = ledger_world
    sim = DataCenterSimulator(slug="guian", token="t", seed=11)
    server = serve(sim)
    w.dc.feed_url = f"http://127.0.0.1:{server.server_address[1]}/feed"
    w.dc.feed_token = "t"
    w.dc.save()
    sim.hold(w.voucher.code)
    sim.generate(1200)  # three pages of 500 with the default policy
    original, calls = sim.feed_page, {"n": 0}

    def third_page_hangs(cursor, limit):
        calls["n"] += 1
        status, body, delay = original(cursor, limit)
        return status, body, (60.0 if calls["n"] == 3 else delay)

    sim.feed_page = third_page_hangs
    try:
        with celery_worker(concurrency=2) as worker:
            feed_sync_task.delay(w.dc.pk)
            wait_for(lambda: SyncRun.objects.filter(pages=2).exists(), timeout=60)
            kill_worker(worker)
        run = SyncRun.objects.get()
        assert (run.outcome, run.pages) == ("running", 2)  # it never finished
        sim.feed_page = original

        def lock_free():
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND classid = %s AND objid = %s",
                    [_LOCK_NAMESPACE, w.dc.pk],
                )
                return cursor.fetchone()[0] == 0

        wait_for(lock_free, timeout=30)
        with celery_worker(concurrency=2):
            usage_batches_sweep(minutes=0)  # batches whose apply died with the worker
            feed_sync_task.delay(w.dc.pk)
            wait_for(lambda: SyncRun.objects.filter(outcome="ok").exists(), timeout=60)
            wait_for(lambda: not UsageBatch.objects.exclude(status="done").exists(), timeout=60)
            _time.sleep(0.5)
    finally:
        server.shutdown()
    ids = sorted(r["record_id"] for r in sim.log)
    assert sorted(UsageRecord.objects.values_list("record_id", flat=True)) == ids
    w.voucher.refresh_from_db()
    covered = sum(UsageRecord.objects.values_list("covered_amount", flat=True))
    assert w.voucher.balance == Decimal("1000.00") - covered
    assert ledger_verify() == []
