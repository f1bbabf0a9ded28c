"""Fixtures of the ledger and data-center API tests: two cities each with a program, a
data center registered for each city, a company with a voucher in Shanghai and an
active redemption at Shanghai's data center, and an API key per data center."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from compute.models import DataCenter, Redemption, RedemptionStatus, Registration
from compute.services import api_key_issue
from portal.audit import SYSTEM
from tests.factories import DataCenterFactory, UserFactory
from tests.vouchers.conftest import make_company, make_program
from vouchers.ledger import voucher_issue
from vouchers.models import Company, Program, Voucher


def api_client(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


@dataclass
class LedgerWorld:
    program: Program
    other_program: Program
    company: Company
    voucher: Voucher
    other_voucher: Voucher
    dc: DataCenter
    other_dc: DataCenter
    redemption: Redemption
    key: str
    other_key: str
    api: APIClient
    other_api: APIClient


@pytest.fixture
def ledger_world(world, startup_user) -> LedgerWorld:
    sh, sz = world["shanghai"], world["shenzhen"]
    program = make_program(sh.city)
    other_program = make_program(sz.city, rate_domestic=Decimal("0.50"))
    dc = DataCenterFactory(slug="guian")
    other_dc = DataCenterFactory(slug="zhongwei")
    dc.programs.add(program)
    other_dc.programs.add(other_program)
    Registration.objects.create(city=sh.city, data_center=dc, starts_on=date(2026, 1, 1))
    Registration.objects.create(city=sz.city, data_center=other_dc, starts_on=date(2026, 1, 1))
    company = make_company(startup_user)
    voucher = voucher_issue(
        program=program,
        company=company,
        amount=Decimal("1000.00"),
        actor=sh.approver,
        valid_from=date(2026, 11, 1),
    )
    other_voucher = voucher_issue(
        program=other_program,
        company=company,
        amount=Decimal("500.00"),
        actor=sz.approver,
        valid_from=date(2026, 11, 1),
    )
    redemption = Redemption.objects.create(
        voucher=voucher,
        data_center=dc,
        contract_ref="GA-2026-001",
        status=RedemptionStatus.ACTIVE,
        requested_by=startup_user,
    )
    Redemption.objects.create(
        voucher=other_voucher,
        data_center=other_dc,
        contract_ref="ZW-2026-001",
        status=RedemptionStatus.ACTIVE,
        requested_by=startup_user,
    )
    _k, key = api_key_issue(data_center=dc, actor=SYSTEM)
    _k, other_key = api_key_issue(data_center=other_dc, actor=SYSTEM)
    return LedgerWorld(
        program=program,
        other_program=other_program,
        company=company,
        voucher=voucher,
        other_voucher=other_voucher,
        dc=dc,
        other_dc=other_dc,
        redemption=redemption,
        key=key,
        other_key=other_key,
        api=api_client(key),
        other_api=api_client(other_key),
    )


@pytest.fixture
def eager_tasks(eager_celery):
    """Run Celery tasks in-process, errors raised (unit tests of the pipeline; the
    integration tests use a real worker instead)."""
    yield


@pytest.fixture
def operator(ledger_world) -> object:
    user = UserFactory(email="ops@guian.test")
    ledger_world.dc.operators.add(user)
    return user


def record(n: int, voucher: str, **overrides) -> dict:
    body = {
        "record_id": f"dc-2026-11-{n:06d}",
        "voucher": voucher,
        "started_at": "2026-11-02T08:00:00+08:00",
        "ended_at": "2026-11-02T20:00:00+08:00",
        "resource": "Ascend 910B",
        "domestic": True,
        "quantity": "96.000",
        "amount": "100.00",
    }
    body.update(overrides)
    return body


def usage_records_for(voucher: Voucher, amounts: list[Decimal]) -> list[int]:
    """Usage records covering `amounts` on `voucher` (accepted, at a data center of its
    own, through a redemption), for tests that post the charges themselves with
    `ledger_charge_many`: `verify_ledger` wants each charge to come from its record."""
    from compute.models import UsageBatch, UsageRecord

    dc = DataCenterFactory(slug=f"dc-for-{voucher.pk}")
    redemption = Redemption.objects.create(
        voucher=voucher, data_center=dc, contract_ref="T-1", status=RedemptionStatus.ACTIVE
    )
    batch = UsageBatch.objects.create(data_center=dc, body_hash="0" * 64, received=len(amounts))
    return [
        UsageRecord.objects.create(
            data_center=dc,
            record_id=f"r-{n}",
            batch=batch,
            voucher=voucher,
            redemption=redemption,
            started_at=datetime(2026, 11, 2, 8, tzinfo=UTC),
            ended_at=datetime(2026, 11, 2, 20, tzinfo=UTC),
            resource="Ascend 910B",
            domestic=True,
            quantity=Decimal("1.000"),
            amount=amount,
            covered_amount=amount,
        ).pk
        for n, amount in enumerate(amounts, start=1)
    ]
