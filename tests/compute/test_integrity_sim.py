"""The simulator's `inflate` fault over real HTTP: the demo's inventory, bands and rules
(compute/integrity/demo.py) stay quiet on its ordinary traffic, and the capacity check
finds the impossible hours an inflating data center bills."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from compute.integrity.demo import DEMO_CARDS, seed_integrity
from compute.integrity.models import Finding, FindingRule, Inventory, PriceBand
from compute.integrity.nightly import integrity_nightly
from compute.models import UsageRecord
from compute.simulator import INFLATED_CARDS, DataCenterSimulator, serve
from compute.sync import SyncPolicy, feed_sync
from vouchers.models import Voucher

pytestmark = pytest.mark.usefixtures("eager_tasks")

FAST = SyncPolicy(page_size=50, timeout=2, attempts=2, backoff=0.01)


@pytest.fixture
def sim(ledger_world):
    # A voucher big enough that the records are covered (the demo's are larger still).
    Voucher.objects.filter(pk=ledger_world.voucher.pk).update(
        face_value=Decimal("10000000"), balance=Decimal("10000000")
    )
    simulator = DataCenterSimulator(slug="guian", token="feed-secret", seed=5)
    server = serve(simulator)
    dc = ledger_world.dc
    dc.feed_url = f"http://127.0.0.1:{server.server_address[1]}/feed"
    dc.feed_token = "feed-secret"
    dc.save()
    simulator.hold(ledger_world.voucher.code)
    simulator.valid_from[ledger_world.voucher.code] = timezone.now() - timedelta(days=5)
    yield simulator
    server.shutdown()


def test_the_inflating_data_center_is_found_and_ordinary_traffic_is_not(
    ledger_world, sim, django_capture_on_commit_callbacks
):
    seed_integrity()
    assert Inventory.objects.filter(cards=DEMO_CARDS).count() == 8 * 2  # both registrations
    assert PriceBand.objects.filter(program=ledger_world.program).count() == 8
    sim.generate(60)
    with django_capture_on_commit_callbacks(execute=True):
        feed_sync(data_center_id=ledger_world.dc.pk, policy=FAST)
    assert UsageRecord.objects.count() == 60
    assert integrity_nightly() == 0
    assert not Finding.objects.exists() and not UsageRecord.objects.filter(held=True).exists()

    sim.arm("inflate")
    sim.generate(5)
    inflated = [r for r in sim.log if r["record_id"].endswith("-x")]
    assert len(inflated) == 1 and Decimal(inflated[0]["quantity"]) == INFLATED_CARDS
    with django_capture_on_commit_callbacks(execute=True):
        feed_sync(data_center_id=ledger_world.dc.pk, policy=FAST)
    assert not Finding.objects.exists()  # the price per card-hour is the usual one
    assert integrity_nightly() >= 1
    finding = Finding.objects.get(rule=FindingRule.CAPACITY)
    assert inflated[0]["record_id"] in finding.records.values_list("record_id", flat=True)
    assert Decimal(finding.evidence["peak_cards_used"]) > DEMO_CARDS
