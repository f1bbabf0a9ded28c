"""Benchmark of the nightly capacity check (compute/integrity/nightly.py): a month of
2,000,000 usage records at one data center for one city (8 accelerator models, jobs of
1–24 hours on 1–64 cards), inventory declared, then `capacity_check` over the month —
the hour buckets in SQL. Prints the time; the target is under a minute (issue #19).

    make bench-integrity     # or: .venv/bin/python tests/bench/bench_integrity.py
    BENCH_RECORDS=500000 make bench-integrity
Uses DATABASE_URL's server with a database of its own (`<name>_bench_integrity`,
recreated). The records are written by one INSERT … SELECT (not the pipeline: that is
`make bench`'s business).
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RECORDS = int(os.environ.get("BENCH_RECORDS", "2000000"))
VOUCHERS = 200
MODELS = [
    "Ascend 910B",
    "Hygon DCU Z100",
    "Cambricon MLU370-X8",
    "Kunlunxin R200",
    "NVIDIA A800",
    "NVIDIA H800",
    "NVIDIA H20",
    "NVIDIA L20",
]


# Record g: voucher g mod VOUCHERS, model g mod 8, ends at a minute spread over November
# (UTC), 1–24 hours long on 1–64 cards.
_RECORDS = """
INSERT INTO compute_usagerecord (data_center_id, record_id, batch_id, voucher_id,
    redemption_id, started_at, ended_at, resource, domestic, quantity, amount, covered_amount)
SELECT %(dc)s, 'r' || g, %(batch)s, v.id, v.redemption, e - make_interval(hours => h), e,
       (%(models)s::text[])[1 + g %% 8], g %% 8 < 4, c * h, c * h * 10, c * h * 3
FROM generate_series(1::bigint, %(n)s) AS g
CROSS JOIN LATERAL (
    SELECT (1 + (g * 7919) %% 24)::int AS h, (1 << ((g * 104729) %% 7)::int) AS c,
           timestamptz '2026-11-01 00:00+00'
             + make_interval(mins => (1440 + (g * 31) %% 41760)::int) AS e) x
JOIN (SELECT row_number() OVER (ORDER BY id) - 1 AS k, id, redemption
      FROM unnest(%(vouchers)s::bigint[], %(redemptions)s::bigint[]) AS t(id, redemption)) v
  ON v.k = g %% %(vouchers_n)s
"""


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from tests.bench.harness import bench_django, bench_world

    bench_django("_bench_integrity")
    from django.db import connection

    from compute.integrity.models import Inventory
    from compute.integrity.nightly import capacity_check
    from compute.models import Redemption, RedemptionStatus, UsageBatch
    from vouchers.models import Voucher

    city, program, dc, registration, company = bench_world()
    vouchers = Voucher.objects.bulk_create(
        Voucher(
            code=f"BN-26-{n:04d}-0000",
            city=city,
            program=program,
            company=company,
            face_value=Decimal("1000000"),
            balance=Decimal("1000000"),
            valid_from=date(2026, 11, 1),
            valid_until=date(2027, 10, 31),
        )
        for n in range(VOUCHERS)
    )
    redemptions = Redemption.objects.bulk_create(
        Redemption(voucher=v, data_center=dc, contract_ref="B", status=RedemptionStatus.ACTIVE)
        for v in vouchers
    )
    batch = UsageBatch.objects.create(data_center=dc, body_hash="0" * 64, received=0)
    # Average load per model is about RECORDS/8 × 12.5 h × 18 cards / 720 h; declared
    # a little above it, so the busiest hours of some models are flagged (real work).
    mean_cards = int(RECORDS / 8 * 12.5 * 18.1 / 720)
    for model in MODELS:
        Inventory.objects.create(
            registration=registration,
            accelerator=model,
            cards=int(mean_cards * 1.1),
            valid_from=date(2026, 10, 1),
        )
    t0 = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            _RECORDS,
            {
                "dc": dc.pk,
                "batch": batch.pk,
                "models": MODELS,
                "n": RECORDS,
                "vouchers": [v.pk for v in vouchers],
                "redemptions": [r.pk for r in redemptions],
                "vouchers_n": VOUCHERS,
            },
        )
        cursor.execute("ANALYZE compute_usagerecord")
    print(f"setup: {RECORDS:,} records in {time.perf_counter() - t0:.1f} s")
    start, end = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
    timings = []
    for _ in range(3):
        t0 = time.perf_counter()
        drafts = capacity_check(start=start, end=end)
        timings.append(time.perf_counter() - t0)
    hours = sum(len(d.evidence["hours"]) for d in drafts)
    print(
        f"capacity check: {RECORDS:,} records over a month in {sorted(timings)[1]:.1f} s"
        f" (median of {', '.join(f'{t:.1f}' for t in timings)} s);"
        f" {len(drafts)} findings, {hours} hours over the inventory (target: under 60 s)"
    )


if __name__ == "__main__":
    main()
