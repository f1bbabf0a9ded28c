"""Compute around the ledger: simulated usage, the API-key command, admin pages and
redemption requests. The ledger itself (`vouchers/ledger.py`) is tested in
tests/vouchers/test_ledger.py."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from portal.errors import DomainError


def test_simulated_usage_is_realistic():
    import random

    from compute.ingest import record_parse
    from compute.simulation import usage_records

    records = usage_records(
        rng=random.Random(1), prefix="guian", vouchers=["SH-26-AAAA-AAAA"], count=200
    )
    assert len({r["record_id"] for r in records}) == 200
    for raw in records:
        parsed, errors = record_parse(raw)
        assert errors == {}
        per_hour = Decimal(parsed.amount) / Decimal(parsed.quantity)
        assert Decimal("5") <= per_hour <= Decimal("30")
    assert 0.4 < sum(r["domestic"] for r in records) / 200 < 0.8


def test_issue_api_key_command_prints_the_key_once(ledger_world, capsys):
    from compute.models import ApiKey
    from compute.services import api_key_authenticate

    call_command("issue_api_key", "guian", name="cli")
    raw = capsys.readouterr().out.strip()
    key = ApiKey.objects.get(name="cli")
    assert raw.startswith(key.prefix)
    assert api_key_authenticate(raw).data_center == ledger_world.dc
    with pytest.raises(CommandError):
        call_command("issue_api_key", "nowhere")


def test_admin_pages_open(admin_client, ledger_world):
    for path in (
        "/admin/compute/datacenter/",
        f"/admin/compute/datacenter/{ledger_world.dc.pk}/change/",
        "/admin/compute/apikey/",
        "/admin/compute/redemption/",
        "/admin/compute/usagebatch/",
    ):
        assert admin_client.get(path).status_code == 200, path


def test_only_the_vouchers_company_may_request_a_redemption(ledger_world, outsider):
    from compute.services import redemption_request

    with pytest.raises(DomainError) as err:
        redemption_request(
            voucher=ledger_world.voucher,
            data_center=ledger_world.dc,
            contract_ref="X",
            actor=outsider,
        )
    assert err.value.code == "forbidden"


def test_simulated_usage_never_ends_before_the_voucher_starts():
    import random
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from compute.simulation import usage_records

    start = datetime(2026, 11, 29, tzinfo=ZoneInfo("Asia/Shanghai"))
    end = datetime(2026, 11, 29, 5, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    records = usage_records(
        rng=random.Random(2),
        prefix="x",
        vouchers=["V1"],
        count=100,
        end=end,
        not_before={"V1": start},
    )
    assert all(start < datetime.fromisoformat(r["ended_at"]) <= end for r in records)
