"""The pull sync against the real data-center simulator over HTTP, fault by fault."""

from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest
from django.db import connection

from compute.models import BatchSource, SyncRun, UsageBatch, UsageRecord
from compute.simulator import DataCenterSimulator, serve
from compute.sync import SyncPolicy, feed_sync
from vouchers.ledger import ledger_verify
from vouchers.models import EntryKind, LedgerEntry

pytestmark = pytest.mark.usefixtures("eager_tasks")

FAST = SyncPolicy(page_size=10, timeout=0.5, attempts=3, backoff=0.01)


@pytest.fixture
def feed(ledger_world):
    sim = DataCenterSimulator(slug="guian", token="feed-secret", seed=3)
    server = serve(sim)
    dc = ledger_world.dc
    dc.feed_url = f"http://127.0.0.1:{server.server_address[1]}/feed"
    dc.feed_token = "feed-secret"
    dc.save()
    sim.hold(ledger_world.voucher.code)
    sim.generate(25)
    yield sim
    server.shutdown()


def sync(dc, capture, policy=FAST):
    with capture(execute=True):
        return feed_sync(data_center_id=dc.pk, policy=policy)


def assert_exact(w, sim):
    """Every generated record charged exactly once, and the ledger reconciles."""
    ids = sorted(r["record_id"] for r in sim.log)
    assert sorted(UsageRecord.objects.values_list("record_id", flat=True)) == ids
    charged = -sum(
        e.amount for e in LedgerEntry.objects.filter(voucher=w.voucher, kind=EntryKind.CHARGE)
    )
    w.voucher.refresh_from_db()
    assert w.voucher.balance == Decimal("1000.00") - charged
    assert charged == sum(UsageRecord.objects.values_list("covered_amount", flat=True))
    assert ledger_verify() == []


def test_a_clean_sync_pages_through_the_feed(
    ledger_world, feed, django_capture_on_commit_callbacks
):
    run = sync(ledger_world.dc, django_capture_on_commit_callbacks)
    assert (run.outcome, run.pages, run.records) == ("ok", 3, 25)
    assert UsageBatch.objects.filter(source=BatchSource.PULL).count() == 3
    assert_exact(ledger_world, feed)
    # New usage later: the next run starts from the stored cursor.
    feed.generate(4)
    run = sync(ledger_world.dc, django_capture_on_commit_callbacks)
    assert (run.pages, run.records) == (1, 4)
    assert_exact(ledger_world, feed)


@pytest.mark.parametrize(
    ("fault", "count", "seconds"),
    [
        ("latency", 2, 0.2),
        ("http500", 2, 0),
        ("http503", 2, 0),
        ("timeout", 1, 2.0),
        ("malformed", 2, 0),
    ],
)
def test_transient_faults_are_retried(
    ledger_world, feed, django_capture_on_commit_callbacks, fault, count, seconds
):
    feed.arm(fault, count, seconds)
    run = sync(ledger_world.dc, django_capture_on_commit_callbacks)
    assert run.outcome == "ok", run.error
    assert_exact(ledger_world, feed)


@pytest.mark.parametrize("fault", ["repeat", "out_of_order"])
def test_repeated_and_shuffled_records_are_charged_once(
    ledger_world, feed, django_capture_on_commit_callbacks, fault
):
    feed.arm(fault, 5)
    run = sync(ledger_world.dc, django_capture_on_commit_callbacks)
    assert run.outcome == "ok"
    assert_exact(ledger_world, feed)
    if fault == "repeat":
        duplicates = sum(b.duplicate for b in UsageBatch.objects.all())
        assert duplicates > 0


def test_a_record_changed_after_it_was_sent_is_a_conflict(
    ledger_world, feed, django_capture_on_commit_callbacks
):
    feed.arm("mutate", 1)
    run = sync(ledger_world.dc, django_capture_on_commit_callbacks)
    assert run.outcome == "ok"
    conflicts = [
        r
        for b in UsageBatch.objects.all()
        for r in b.results
        if (r["error"] or {}).get("code") == "conflict"
    ]
    assert len(conflicts) == 1
    assert_exact(ledger_world, feed)  # the changed copy charged nothing


def test_persistent_failure_marks_the_data_center_unhealthy_until_a_good_run(
    ledger_world, feed, django_capture_on_commit_callbacks
):
    feed.arm("http503", FAST.attempts)
    run = sync(ledger_world.dc, django_capture_on_commit_callbacks)
    assert run.outcome == "failed"
    assert "503" in run.error
    ledger_world.dc.refresh_from_db()
    assert not ledger_world.dc.feed_healthy
    assert UsageRecord.objects.count() == 0
    run = sync(ledger_world.dc, django_capture_on_commit_callbacks)
    assert run.outcome == "ok"
    ledger_world.dc.refresh_from_db()
    assert ledger_world.dc.feed_healthy
    assert_exact(ledger_world, feed)


def test_a_failure_mid_run_keeps_the_pages_before_it(
    ledger_world, feed, django_capture_on_commit_callbacks
):
    sync(ledger_world.dc, django_capture_on_commit_callbacks)
    feed.generate(30)
    # Page 1 of the second run succeeds, then the feed fails for good.
    original = feed.feed_page
    calls = {"n": 0}

    def flaky(cursor, limit):
        calls["n"] += 1
        if calls["n"] > 1:
            return 503, {"error": "down"}, 0
        return original(cursor, limit)

    feed.feed_page = flaky
    run = sync(ledger_world.dc, django_capture_on_commit_callbacks)
    assert (run.outcome, run.pages, run.records) == ("failed", 1, 10)
    feed.feed_page = original
    run = sync(ledger_world.dc, django_capture_on_commit_callbacks)
    assert run.outcome == "ok"
    assert_exact(ledger_world, feed)


def test_wrong_token_fails_the_run(ledger_world, feed, django_capture_on_commit_callbacks):
    ledger_world.dc.feed_token = "wrong"
    ledger_world.dc.save()
    run = sync(ledger_world.dc, django_capture_on_commit_callbacks)
    assert run.outcome == "failed"
    assert "401" in run.error


def test_overlapping_syncs_never_run_at_once(
    ledger_world, feed, django_capture_on_commit_callbacks
):
    from compute.sync import _LOCK_NAMESPACE

    db = connection.settings_dict
    other = psycopg.connect(
        dbname=db["NAME"], user=db["USER"], host=db["HOST"] or None, port=db["PORT"] or None
    )
    try:
        other.execute("SELECT pg_advisory_lock(%s, %s)", [_LOCK_NAMESPACE, ledger_world.dc.pk])
        run = sync(ledger_world.dc, django_capture_on_commit_callbacks)
        assert run.outcome == "skipped"
        assert UsageRecord.objects.count() == 0
    finally:
        # Released before closing: a closed connection's backend may still hold the
        # lock for a moment after close() returns (this test failed once so in CI).
        other.execute("SELECT pg_advisory_unlock_all()")
        other.close()
    assert sync(ledger_world.dc, django_capture_on_commit_callbacks).outcome == "ok"
    assert SyncRun.objects.count() == 2


def test_redemption_changes_in_the_feed_are_applied(
    ledger_world, feed, django_capture_on_commit_callbacks, startup_user
):
    from compute.models import Redemption, RedemptionStatus

    w = ledger_world
    w.redemption.status = RedemptionStatus.CLOSED
    w.redemption.save()
    requested = Redemption.objects.create(
        voucher=w.voucher, data_center=w.dc, contract_ref="GA-77", requested_by=startup_user
    )
    feed.answer_redemption(requested.pk, "active", "GA-77-SIGNED")
    feed.answer_redemption(w.other_voucher.redemptions.get().pk, "closed")  # not theirs
    sync(w.dc, django_capture_on_commit_callbacks)
    requested.refresh_from_db()
    assert (requested.status, requested.contract_ref) == ("active", "GA-77-SIGNED")
    assert w.other_voucher.redemptions.get().status == "active"


def test_the_simulator_also_pushes_like_a_client(ledger_world, live_server):
    sim = DataCenterSimulator(slug="guian", token="t", seed=4)
    sim.hold(ledger_world.voucher.code)
    records = sim.generate(5)
    result = sim.push(live_server.url, ledger_world.key, records)
    assert result["status"] == 202
    assert result["body"]["received"] == 5


def test_the_simulator_learns_its_redemptions_from_the_portal(
    ledger_world, live_server, startup_user
):
    """run_datacenter_sim's loop: holds the vouchers of active redemptions (from their
    validity) and answers requested ones, as a real billing system would."""
    from compute.management.commands.run_datacenter_sim import Command
    from compute.models import Redemption

    w = ledger_world
    requested = Redemption.objects.create(
        voucher=w.other_voucher, data_center=w.dc, contract_ref="GA-88", requested_by=startup_user
    )
    sim = DataCenterSimulator(slug="guian", token="t", seed=5)
    Command()._learn(sim, live_server.url, w.key)
    assert sim.vouchers == [w.voucher.code]
    assert sim.valid_from[w.voucher.code].date() == w.voucher.valid_from
    assert sim.redemption_changes == [
        {"id": requested.pk, "status": "active", "contract_ref": "GA-88"}
    ]
    Command()._learn(sim, live_server.url, "wrong-key")  # refused: learns nothing more
    assert len(sim.redemption_changes) == 1


def test_pulled_numbers_keep_their_exact_digits(ledger_world, django_capture_on_commit_callbacks):
    # A feed that writes amounts as JSON numbers, served over real HTTP. Read as floats,
    # 100.000000000000001 would become 100.0 and be charged; it has more than two
    # decimals, so it is rejected, and 100.5 is charged as exactly 100.50.
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    w = ledger_world
    fields = (
        f'"voucher": "{w.voucher.code}", "started_at": "2026-11-02T08:00:00+08:00", '
        '"ended_at": "2026-11-02T20:00:00+08:00", "resource": "Ascend 910B", '
        '"domestic": true, "quantity": 12'
    )
    page = (
        '{"records": ['
        f'{{"record_id": "n-1", {fields}, "amount": 100.000000000000001}}, '
        f'{{"record_id": "n-2", {fields}, "amount": 100.5}}'
        '], "redemptions": [], "next_cursor": "end", "has_more": false}'
    ).encode()

    class Feed(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Feed)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        w.dc.feed_url = f"http://127.0.0.1:{server.server_address[1]}/feed"
        w.dc.feed_token = "t"
        w.dc.save()
        run = sync(w.dc, django_capture_on_commit_callbacks)
    finally:
        server.shutdown()
    assert run.outcome == "ok"
    bad, good = UsageBatch.objects.get(source=BatchSource.PULL).results
    assert (bad["status"], bad["error"]["code"]) == ("rejected", "invalid")
    assert (good["status"], good["covered_amount"]) == ("accepted", "30.15")
    assert UsageRecord.objects.get().amount == Decimal("100.50")


def test_the_beat_syncs_every_data_center_that_offers_a_feed(
    ledger_world, feed, django_capture_on_commit_callbacks
):
    from compute.tasks import feed_sync_all

    with django_capture_on_commit_callbacks(execute=True):
        assert feed_sync_all.delay().get() == 1  # zhongwei offers no feed
    run = SyncRun.objects.get()
    assert (run.data_center, run.outcome, run.records) == (ledger_world.dc, "ok", 25)
    assert_exact(ledger_world, feed)
