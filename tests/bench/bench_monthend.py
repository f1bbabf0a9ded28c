"""Month-end: building every statement of a month for a city, as the monthly task does
(`compute.tasks.settlements_monthly` → `compute.settlements.settlements_build_month`).

Fills October 2026 of the benchmark city with N usage records (BENCH_MONTH_RECORDS) by
one `INSERT … SELECT generate_series` per million, spread over every voucher's
redemption at every data center (record *g* on redemption *g* mod their number, at a
minute of the month), then ANALYZEs and builds the month's statements (one per data
center registered for the city), sampling the resident memory of the building process
and of its PostgreSQL backend every 20 ms. The statement build reads usage records only
(accepted, not held, ended in the month), so the records are written without their
ledger entries; vouchers' balances do not reflect them, and `make bench` runs this last.

`make bench` runs it with a default that keeps the whole bench under 15 minutes and
extrapolates (linearly, labelled so) to the issue's 20,000,000; `make bench-monthend`
runs it alone with 20,000,000 in a database of its own (`<name>_bench_monthend`):

    BENCH_MONTH_RECORDS=20000000 .venv/bin/python tests/bench/bench_monthend.py
"""

from __future__ import annotations

import os
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ISSUE_RECORDS = 20_000_000
PERIOD = date(2026, 10, 1)
CHUNK = 1_000_000
# Below this the build's fixed part (each statement scans its data center's other
# months too, until the usage table is partitioned) dwarfs the month's: no extrapolation.
EXTRAPOLATE_FROM = 1_000_000

_FILL = """
INSERT INTO compute_usagerecord
    (data_center_id, record_id, batch_id, voucher_id, redemption_id, started_at, ended_at,
     resource, domestic, quantity, amount, covered_amount)
SELECT r.data_center_id, 'month-' || g, %(batch)s, r.voucher_id, r.id,
       %(start)s::timestamptz + ((g * 7919) %% 43000) * interval '1 minute',
       %(start)s::timestamptz + ((g * 7919) %% 43000 + 60) * interval '1 minute',
       CASE WHEN g %% 3 = 0 THEN 'NVIDIA H20' ELSE 'Ascend 910B' END, g %% 3 <> 0,
       1.000, 120.50 + g %% 97, round((120.50 + g %% 97) * 0.30, 2)
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
JOIN month_redemptions r ON r.n = g %% %(count)s
"""


def fill_month(city, records: int) -> float:
    """Write `records` usage records of PERIOD for the city's redemptions; seconds."""
    from django.db import connection, transaction

    from compute.models import UsageBatch

    batch = UsageBatch.objects.create(
        data_center=city.registrations.order_by("pk").first().data_center,
        body_hash="month-end",
        received=0,
        status="done",
    )
    start = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE month_redemptions AS SELECT row_number() OVER (ORDER BY r.id) - 1"
            " AS n, r.id, r.voucher_id, r.data_center_id FROM compute_redemption r"
            " JOIN vouchers_voucher v ON v.id = r.voucher_id WHERE v.city_id = %s",
            [city.pk],
        )
        cursor.execute("SELECT count(*) FROM month_redemptions")
        count = cursor.fetchone()[0]
        for first in range(0, records, CHUNK):
            with transaction.atomic():
                cursor.execute(
                    _FILL,
                    {
                        "batch": batch.pk,
                        "start": "2026-10-01T00:00:00+08:00",
                        "first": first,
                        "last": min(records, first + CHUNK) - 1,
                        "count": count,
                    },
                )
            if records > CHUNK:
                print(f"    {min(records, first + CHUNK):,} records written", flush=True)
        cursor.execute("DROP TABLE month_redemptions")
        cursor.execute("ANALYZE compute_usagerecord")
    return time.perf_counter() - start


def build_month(city, records: int) -> dict:
    """Build every statement of PERIOD for the city; time and peak memory."""
    from django.db import connection

    from compute.settlements import settlements_build_month
    from tests.bench.harness import peak_rss

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    start = time.perf_counter()
    with peak_rss(os.getpid(), backend) as rss:
        built = settlements_build_month(period=PERIOD, city=city)
    seconds = time.perf_counter() - start
    lines = sum(s.records for s in built)
    mb = 2**20
    figures = {
        "records": records,
        "period": f"{PERIOD:%Y-%m}",
        "statements": len(built),
        "statement_lines": lines,
        "seconds": round(seconds, 2),
        "records_per_s": round(records / seconds, 1),
        "peak_rss_mb_builder": round(rss[os.getpid()]["peak"] / mb, 1),
        "rss_mb_builder_before": round(rss[os.getpid()]["before"] / mb, 1),
        "peak_rss_mb_postgres_backend": round(rss[backend]["peak"] / mb, 1),
        "rss_mb_postgres_backend_before": round(rss[backend]["before"] / mb, 1),
    }
    if EXTRAPOLATE_FROM <= records < ISSUE_RECORDS:
        figures["extrapolated_seconds_20m"] = round(seconds * ISSUE_RECORDS / records, 1)
    print(
        f"  month-end: {len(built)} statements, {lines:,} lines from {records:,} records in "
        f"{seconds:.1f} s; peak RSS builder {figures['peak_rss_mb_builder']:.0f} MB, "
        f"PostgreSQL backend {figures['peak_rss_mb_postgres_backend']:.0f} MB"
        + (
            f"; linear extrapolation to 20,000,000: {figures['extrapolated_seconds_20m']:.0f} s"
            if "extrapolated_seconds_20m" in figures
            else ""
        ),
        flush=True,
    )
    return figures


def monthend(city, records: int) -> dict:
    filled = fill_month(city, records)
    print(f"  month-end: {records:,} records of {PERIOD:%Y-%m} written in {filled:.1f} s")
    return {**build_month(city, records), "fill_seconds": round(filled, 1)}


def main() -> None:
    """`make bench-monthend`: the world, the month, the build, in a database of its own."""
    from tests.bench.harness import bench_django, bench_vouchers, bench_world, more_data_centers

    records = int(os.environ.get("BENCH_MONTH_RECORDS", str(ISSUE_RECORDS)))
    vouchers = int(os.environ.get("BENCH_VOUCHERS", "2000"))
    bench_django("_bench_monthend")
    city, program, dc, _registration, company = bench_world()
    centers = [dc, *more_data_centers(city, program, 3)]
    bench_vouchers(program, company, centers, vouchers)
    load = os.getloadavg()
    monthend(city, records)
    print(f"load average {load[0]:.2f} at start, {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
