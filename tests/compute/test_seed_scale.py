"""`manage.py seed_scale` (issue #12 item 11), run small: what it loads is consistent
(verify_ledger and verify_audit pass, sums agree with the rows), and a second run on the
same city is refused with nothing written."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Sum

from compute.models import Redemption, UsageBatch, UsageRecord
from compute.scale import SCALE_PROGRAM
from portal.audit import audit_chain_verify
from portal.models import AuditEvent, City
from vouchers.ledger import ledger_verify
from vouchers.models import Application, ApplicationState, LedgerEntry, Program, Voucher


@pytest.fixture
def seeded(db):
    call_command(
        "seed_scale",
        "--city",
        "scaletest",
        "--applications",
        "200",
        "--vouchers",
        "50",
        "--records",
        "2000",
    )
    return City.objects.get(slug="scaletest")


def test_seed_scale_loads_a_consistent_city(seeded):
    city = seeded
    assert Application.objects.filter(city=city).count() == 200
    assert Application.objects.filter(city=city, state=ApplicationState.APPROVED).count() == 50
    vouchers = Voucher.objects.filter(city=city)
    assert vouchers.count() == 50
    records = UsageRecord.objects.filter(voucher__city=city)
    assert records.count() == 2000
    assert ledger_verify() == []
    assert audit_chain_verify() == []
    # Independent sums: every voucher's balance is its face value less what its records
    # covered; the program allocated the face values; redemptions carry the covered sums.
    covered = records.aggregate(s=Sum("covered_amount"))["s"]
    face = vouchers.aggregate(s=Sum("face_value"))["s"]
    assert vouchers.aggregate(s=Sum("balance"))["s"] == face - covered
    assert Program.objects.get(city=city, slug=SCALE_PROGRAM).allocated == face
    assert (
        Redemption.objects.filter(voucher__city=city).aggregate(s=Sum("covered_total"))["s"]
        == covered
    )
    charges = LedgerEntry.objects.filter(voucher__city=city, kind="charge")
    assert charges.count() == records.filter(covered_amount__gt=0).count()
    assert -charges.aggregate(s=Sum("amount"))["s"] == covered
    assert (
        UsageBatch.objects.filter(usage_records__voucher__city=city)
        .distinct()
        .aggregate(s=Sum("received"))["s"]
        == 2000
    )
    # Spread over the months and the data centers.
    months = {r.strftime("%Y-%m") for r in records.values_list("started_at", flat=True)}
    assert len(months) >= 10
    assert records.values("data_center").distinct().count() >= 2
    events = AuditEvent.objects.filter(city=city)
    assert events.filter(action="voucher.issue").count() == 50
    seed = events.get(action="scale.seed")
    assert seed.data["usage_records"] == 2000
    assert covered > Decimal(0)


def test_seed_scale_refuses_a_city_that_has_it(seeded):
    before = (UsageRecord.objects.count(), AuditEvent.objects.count())
    with pytest.raises(CommandError, match="already has scale data"):
        call_command(
            "seed_scale",
            "--city",
            "scaletest",
            "--applications",
            "10",
            "--vouchers",
            "2",
            "--records",
            "10",
        )
    assert (UsageRecord.objects.count(), AuditEvent.objects.count()) == before
