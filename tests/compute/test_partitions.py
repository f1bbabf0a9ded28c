"""Usage records partitioned by month (issue #17 item 2, migration 0020): each record in
its month's partition, a month's queries reading one partition, the idempotency key held
across months by the key table (pushed and pulled), partitions made ahead by beat, and
closed months archived."""

from __future__ import annotations

import io
import re
import threading
from datetime import UTC, date, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import ProgrammingError, connection

from compute.models import (
    BatchSource,
    UsageArchive,
    UsageBatch,
    UsageRecord,
    UsageRecordKey,
)
from compute.partitions import month_bounds, usage_partition_list
from compute.settlements import _MONTH_LINES, settlement_build, settlement_issue
from compute.sync import SyncPolicy, feed_sync
from portal.models import AuditEvent
from tests.compute.conftest import record
from tests.compute.test_usage_rules import _meanwhile
from tests.compute.usage_push import push, results
from vouchers.ledger import ledger_verify, voucher_suspend
from vouchers.models import EntryKind, LedgerEntry

pytestmark = pytest.mark.usefixtures("eager_tasks")
NOV, DEC = date(2026, 11, 1), date(2026, 12, 1)
# Ends in December (Shanghai), in the past of the clock the tests run on.
IN_DECEMBER = {"started_at": "2026-11-30T23:00:00+08:00", "ended_at": "2026-12-01T00:30:00+08:00"}


def partition_of(record_id: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM compute_usagerecord WHERE record_id = %s",
            [record_id],
        )
        return cursor.fetchone()[0]


def scanned(sql: str, params) -> set[str]:
    """The usage partitions a statement's plan reads (EXPLAIN, not run)."""
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    return set(re.findall(r"compute_usagerecord_(?:\d{4}_\d{2}|default)\b", plan))


def charges() -> int:
    return LedgerEntry.objects.filter(kind=EntryKind.CHARGE).count()


def test_a_record_lands_in_its_months_partition(ledger_world, django_capture_on_commit_callbacks):
    w = ledger_world
    records = [record(1, w.voucher.code), record(2, w.voucher.code, **IN_DECEMBER)]
    results(w, push(w, records, django_capture_on_commit_callbacks))
    assert partition_of("dc-2026-11-000001") == "compute_usagerecord_2026_11"
    # 00:30 on 1 December in Shanghai is still 30 November in UTC: bounded in Shanghai.
    assert partition_of("dc-2026-11-000002") == "compute_usagerecord_2026_12"
    keys = UsageRecordKey.objects.order_by("record_id")
    assert [(k.record_id, k.usage_record_id) for k in keys] == [
        (r.record_id, r.pk) for r in UsageRecord.objects.order_by("record_id")
    ]


def test_a_months_query_reads_one_partition(ledger_world):
    start, end = month_bounds(NOV)
    sql = "SELECT count(*) FROM compute_usagerecord WHERE ended_at >= %s AND ended_at < %s"
    assert scanned(sql, [start, end]) == {"compute_usagerecord_2026_11"}
    # Without the bounds every month is read: the assertion above means something.
    assert len(scanned("SELECT count(*) FROM compute_usagerecord", [])) > 12


def test_the_statement_build_and_the_archive_check_read_one_month(ledger_world, shanghai):
    w = ledger_world
    start, end = month_bounds(NOV)
    params = {
        "settlement": 0,
        "dc": w.dc.pk,
        "city": shanghai.city.pk,
        "start": start,
        "end": end,
        "period": NOV,
        "tz": shanghai.city.timezone,
    }
    assert scanned(_MONTH_LINES, params) == {"compute_usagerecord_2026_11"}
    from compute.partitions import _OPEN_RECORDS

    assert scanned(_OPEN_RECORDS, [start, end]) == {"compute_usagerecord_2026_11"}


def test_a_record_repeated_a_month_later_is_a_duplicate_or_a_conflict(
    ledger_world, django_capture_on_commit_callbacks
):
    w = ledger_world
    first = results(w, push(w, [record(1, w.voucher.code)], django_capture_on_commit_callbacks))
    assert first["results"][0]["status"] == "accepted"
    # The same record_id, ending a month later: another partition, the same key.
    later = record(1, w.voucher.code, **IN_DECEMBER)
    body = results(w, push(w, [later], django_capture_on_commit_callbacks))
    assert body["results"][0]["status"] == "rejected"
    assert body["results"][0]["error"]["code"] == "conflict"
    # Sent again as it was (as a data center does a month later): a duplicate.
    body = results(w, push(w, [record(1, w.voucher.code)], django_capture_on_commit_callbacks))
    assert body["results"][0] == {
        "record_id": "dc-2026-11-000001",
        "status": "duplicate",
        "covered_amount": "30.00",
        "error": None,
    }
    assert (UsageRecord.objects.count(), UsageRecordKey.objects.count(), charges()) == (1, 1, 1)
    assert ledger_verify() == []


def test_a_pulled_record_repeated_a_month_later_is_a_duplicate_or_a_conflict(
    ledger_world, django_capture_on_commit_callbacks
):
    w = ledger_world
    results(w, push(w, [record(1, w.voucher.code)], django_capture_on_commit_callbacks))
    same, moved = record(1, w.voucher.code), record(1, w.voucher.code, **IN_DECEMBER)
    page = orjson.dumps(
        {"records": [same], "redemptions": [], "next_cursor": "a", "has_more": False}
    )
    pages = [
        page,
        orjson.dumps(
            {"records": [moved], "redemptions": [], "next_cursor": "b", "has_more": False}
        ),
    ]

    class Feed(BaseHTTPRequestHandler):
        def do_GET(self):
            body = pages[0] if "cursor=a" not in self.path else pages[1]
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Feed)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    policy = SyncPolicy(page_size=10, timeout=2, attempts=1, backoff=0.01)
    try:
        w.dc.feed_url = f"http://127.0.0.1:{server.server_address[1]}/feed"
        w.dc.feed_token = "t"
        w.dc.save()
        for _ in range(2):  # from the empty cursor, then from "a"
            with django_capture_on_commit_callbacks(execute=True):
                assert feed_sync(data_center_id=w.dc.pk, policy=policy).outcome == "ok"
    finally:
        server.shutdown()
    pulled = UsageBatch.objects.filter(source=BatchSource.PULL).order_by("id")
    assert [b.results[0]["status"] for b in pulled] == ["duplicate", "rejected"]
    assert pulled[1].results[0]["error"]["code"] == "conflict"
    assert (UsageRecord.objects.count(), charges()) == (1, 1)


def test_a_record_rejected_under_the_locks_takes_its_key_with_it(
    ledger_world, django_capture_on_commit_callbacks, shanghai, monkeypatch
):
    w = ledger_world
    _meanwhile(
        monkeypatch,
        lambda: voucher_suspend(voucher=w.voucher, actor=shanghai.manager, reason="核查"),
    )
    body = results(w, push(w, [record(1, w.voucher.code)], django_capture_on_commit_callbacks))
    assert body["results"][0]["error"]["code"] == "voucher_inactive"
    assert not UsageRecord.objects.exists() and not UsageRecordKey.objects.exists()


def test_a_record_made_one_at_a_time_gets_its_key(ledger_world):
    from tests.compute.conftest import usage_records_for

    (pk,) = usage_records_for(ledger_world.voucher, [Decimal("5.00")])
    key = UsageRecordKey.objects.get(usage_record_id=pk)
    assert key.ended_at == UsageRecord.objects.get(pk=pk).ended_at


def test_void_finds_the_record_through_its_key(ledger_world, django_capture_on_commit_callbacks):
    w = ledger_world
    results(
        w, push(w, [record(1, w.voucher.code, **IN_DECEMBER)], django_capture_on_commit_callbacks)
    )
    response = w.api.post(
        "/api/v1/usage/records/dc-2026-11-000001/void", {"reason": "重复"}, format="json"
    )
    assert response.status_code == 200 and response.json()["status"] == "void"
    other = w.other_api.post(
        "/api/v1/usage/records/dc-2026-11-000001/void", {"reason": "x"}, format="json"
    )
    assert other.status_code == 404
    assert ledger_verify() == []


# --- partitions made ahead ---------------------------------------------------------------


def test_the_beat_task_makes_missing_months_and_is_idempotent(ledger_world, settings):
    from compute.tasks import usage_partitions_task
    from portal.celery import route_task

    schedule = settings.CELERY_BEAT_SCHEDULE["create-usage-partitions"]
    assert schedule["task"] == "compute.tasks.usage_partitions_task"
    assert route_task("compute.tasks.usage_partitions_task", (), {}, {}) == {"queue": "reports"}
    names = {name for name, _bounds in usage_partition_list()}
    ahead = max(n for n in names if n[-7:-3].isdigit())
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {ahead}")
    # A record of a month without a partition lands in DEFAULT, and still counts.
    (pk,) = _record_in(ledger_world, datetime(2015, 6, 10, tzinfo=UTC))
    assert _partition_of_pk(pk) == "compute_usagerecord_default"
    created = usage_partitions_task()
    assert created == sorted(["compute_usagerecord_2015_06", ahead])
    assert _partition_of_pk(pk) == "compute_usagerecord_2015_06"  # moved out of DEFAULT
    assert usage_partitions_task() == []  # nothing left to do


def _record_in(w, ended_at: datetime) -> list[int]:
    from tests.compute.conftest import usage_records_for

    pks = usage_records_for(w.other_voucher, [Decimal("1.00")])
    UsageRecord.objects.filter(pk=pks[0]).update(ended_at=ended_at, started_at=ended_at)
    UsageRecordKey.objects.filter(usage_record_id=pks[0]).update(ended_at=ended_at)
    return pks


def _partition_of_pk(pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM compute_usagerecord WHERE id = %s", [pk]
        )
        return cursor.fetchone()[0]


# --- the archive ---------------------------------------------------------------------------


def archive(*args: str) -> str:
    out = io.StringIO()
    call_command("archive_usage", *args, stdout=out)
    return out.getvalue()


def attached() -> set[str]:
    return {name for name, _bounds in usage_partition_list()}


def test_the_archive_refuses_a_month_not_settled_and_changes_nothing(
    ledger_world, django_capture_on_commit_callbacks, shanghai
):
    w = ledger_world
    results(w, push(w, [record(1, w.voucher.code)], django_capture_on_commit_callbacks))
    before = attached()
    with pytest.raises(
        CommandError, match=r"Nothing archived: 2026-11 is not settled.*on no issued statement"
    ):
        archive("--before", "2026-12")
    # A draft is not settled either.
    settlement_build(city=shanghai.city, data_center=w.dc, period=NOV)
    with pytest.raises(CommandError, match=r"2026-11 is not settled.*still drafts"):
        archive("--before", "2026-12")
    assert attached() == before and not UsageArchive.objects.exists()
    with pytest.raises(CommandError, match="YYYY-MM"):
        archive("--before", "December")


def test_the_archive_detaches_settled_months(
    ledger_world, django_capture_on_commit_callbacks, shanghai
):
    w = ledger_world
    records = [record(1, w.voucher.code), record(2, w.voucher.code, **IN_DECEMBER)]
    results(w, push(w, records, django_capture_on_commit_callbacks))
    november = settlement_build(city=shanghai.city, data_center=w.dc, period=NOV)
    settlement_issue(settlement=november, actor=shanghai.manager)
    before = attached()

    dry = archive("--before", "2026-12", "--dry-run")
    assert "2026-11: would detach compute_usagerecord_2026_11 (1 records" in dry
    assert attached() == before and not UsageArchive.objects.exists()  # dry: nothing

    done = archive("--before", "2026-12")
    assert "2026-11: detached compute_usagerecord_2026_11" in done
    assert "compute_usagerecord_2026_11" not in attached()
    assert "compute_usagerecord_2026_12" in attached()  # December is not closed
    archived = UsageArchive.objects.get(month=NOV)
    assert (archived.records, archived.covered_total) == (1, Decimal("30.00"))
    event = AuditEvent.objects.get(action="usage.archive", target_id=str(archived.pk))
    assert event.data["month"] == "2026-11"
    assert list(UsageRecord.objects.values_list("record_id", flat=True)) == ["dc-2026-11-000002"]
    # The ledger's checks know the archived record's charge is not orphaned.
    assert ledger_verify() == []
    # Its key still holds: sent again, it is refused, never charged twice.
    body = results(w, push(w, [record(1, w.voucher.code)], django_capture_on_commit_callbacks))
    assert body["results"][0]["error"]["code"] == "conflict"
    assert charges() == 2
    # An archived month is not made again by the beat task.
    from compute.partitions import usage_partitions_ensure

    assert "compute_usagerecord_2026_11" not in usage_partitions_ensure().created


@pytest.mark.django_db(transaction=True)
def test_the_application_role_makes_partitions_but_cannot_alter_the_table(ledger_world):
    """The portal's role owns no table (portal/dbroles.py): it makes partitions through
    the SECURITY DEFINER function, and nothing else of the table's shape."""
    from compute.partitions import usage_partitions_ensure
    from tests.vouchers.test_db_roles import ROLE, django_as

    with connection.cursor() as cursor:
        cursor.execute(
            f"""DO $$ BEGIN CREATE ROLE {ROLE} LOGIN;
                EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"""
        )
    call_command("grant_app_role", ROLE, stdout=io.StringIO())
    ahead = max(n for n, _b in usage_partition_list() if n[-7:-3].isdigit())
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {ahead}")
    with django_as(ROLE):
        assert usage_partitions_ensure().created == [ahead]
        with pytest.raises(ProgrammingError), connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE compute_usagerecord DETACH PARTITION {ahead}")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_userbyid(relowner) <> %s FROM pg_class WHERE relname = %s",
            [ROLE, ahead],
        )
        assert cursor.fetchone()[0]  # the owner's, not the application's
