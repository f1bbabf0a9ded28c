"""The load test's constants, its configuration and the world it seeds in the database."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[3]  # the repository
SHANGHAI = ZoneInfo("Asia/Shanghai")
CENT = Decimal("0.01")
RATE_DOMESTIC = Decimal("0.30")
RATE_OTHER = Decimal("0.20")
LARGE_FACE = Decimal("1000000.00")
# One voucher in ten is small, so vouchers run out under load (covered amounts partial
# or zero) and voids bring them back: the paths where balances are easiest to get wrong.
SMALL_FACE = Decimal("300.00")
UNKNOWN_VOUCHER = "ZZ-26-0000-0000"

# Endpoints as the latency table names them.
NEW = "POST /usage/batches (new)"
REPEAT = "POST /usage/batches (repeat)"
REUSED = "POST /usage/batches (key reused)"
POLL = "GET /usage/batches/{id}"
VOID = "POST /usage/records/{id}/void"
ENDPOINTS = (NEW, REPEAT, REUSED, POLL, VOID)
# What a client does besides pushing new batches, and how often (the rest: new batches).
RARE_ACTIONS = (
    ("repeat", 0.08),  # an earlier batch again, same key and bytes: 200, the first batch
    ("reuse", 0.02),  # an earlier key with another body: 409
    ("void", 0.16),  # void a record it saw accepted: 200
    ("void again", 0.02),  # void a void record: 409
    ("void unknown", 0.01),  # void a record_id never sent: 404
)


@dataclass
class LoadConfig:
    seconds: float = 60
    clients: int = 50
    data_centers: int = 5
    vouchers: int = 1000
    web_workers: int = 3
    web_threads: int = 4
    # One more than the cores, as the benchmark found best (docs/performance.md).
    celery_workers: int = (os.cpu_count() or 1) + 1
    max_batch: int = 100  # records per new batch: 1 to this
    max_pending: int = 3  # batches a client has in flight before it waits for them
    drain_timeout: float = 300  # after the push phase, the most to wait for the batches
    seed: int = 16


# --- the database ---------------------------------------------------------------------------


@dataclass
class Seeded:
    data_centers: list[tuple[int, str, str]]  # (id, slug, raw API key)
    codes: list[str]  # vouchers redeemed at every data center
    unredeemed: list[str]  # vouchers of the city redeemed nowhere: not_authorized
    valid_from: date
    program_id: int


def seed(config: LoadConfig) -> Seeded:
    """A city, a program, the vouchers and their redemptions, the data centers and a
    key each, through the same services the portal uses (bulk rows where no service
    exists: redemptions are accepted by the data center in real life)."""
    from compute.models import Redemption, RedemptionStatus, Registration
    from compute.services import api_key_issue
    from portal.audit import SYSTEM
    from portal.models import City
    from tests.bench.harness import data_center_create
    from vouchers.ledger import voucher_issue
    from vouchers.models import Company, Program

    small = max(1, config.vouchers // 10)
    city = City.objects.create(slug="load", code="LD", name_zh="负载市", name_en="Load")
    program = Program.objects.create(
        city=city,
        slug="load",
        name_zh="负载测试",
        name_en="Load test",
        status="open",
        budget=LARGE_FACE * (config.vouchers + 10),
        award_min=Decimal("1"),
        award_max=LARGE_FACE,
        rate_domestic=RATE_DOMESTIC,
        rate_other=RATE_OTHER,
    )
    company = Company.objects.create(legal_name="负载测试公司", credit_code="91110000000000016X")
    # Valid since 60 days ago (a year from then): usage ending in the last 30 days is
    # inside the validity, and nothing need end in the future.
    valid_from = datetime.now(SHANGHAI).date() - timedelta(days=60)
    vouchers = [
        voucher_issue(
            program=program,
            company=company,
            amount=SMALL_FACE if i < small else LARGE_FACE,
            actor=SYSTEM,
            valid_from=valid_from,
        )
        for i in range(config.vouchers + 3)
    ]
    redeemed, unredeemed = vouchers[: config.vouchers], vouchers[config.vouchers :]
    data_centers = []
    for n in range(config.data_centers):
        dc = data_center_create(f"load-{n}", f"负载{n}", f"Load {n}", program, other="load")
        Registration.objects.create(city=city, data_center=dc, starts_on=valid_from)
        Redemption.objects.bulk_create(
            Redemption(
                voucher=v, data_center=dc, contract_ref=f"L-{n}", status=RedemptionStatus.ACTIVE
            )
            for v in redeemed
        )
        _key, raw = api_key_issue(data_center=dc, actor=SYSTEM)
        data_centers.append((dc.pk, dc.slug, raw))
    return Seeded(
        data_centers=data_centers,
        codes=[v.code for v in redeemed],
        unredeemed=[v.code for v in unredeemed],
        valid_from=valid_from,
        program_id=program.pk,
    )
