"""What the in-pipeline integrity checks (price bands, plan, holding; issue #19) cost on
the ingestion path, as an A/B in one process.

`make bench`'s wall-clock figures with `BENCH_INTEGRITY=1` and `=0` are whole runs
minutes apart on a shared machine, and their difference is within its noise. Here the
same database and vouchers take batches of 5,000 of the benchmark's records
alternately with the checks on (the program's rules and bands as `make bench` sets
them: every check runs, none fires) and off (the rules read as absent, which is what a
program without any costs: the one query, then nothing), so the machine's drift hits
both sides alike. Prints the median wall and CPU milliseconds a batch of each side
(CPU: this process's, i.e. Python's; PostgreSQL's is not in it), the checks' own time,
and the differences. It asserts nothing.

    .venv/bin/python tests/bench/ab_integrity.py        # AB_ROUNDS=12 by default
    AB_VOUCHERS=1000 AB_ROUNDS=12 ...

Uses DATABASE_URL's server with a database of its own (`<name>_ab_integrity`,
recreated); the world and the records are `tests/bench/harness.py`'s.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

ROUNDS = int(os.environ.get("AB_ROUNDS", "12"))
VOUCHERS = int(os.environ.get("AB_VOUCHERS", "1000"))
BATCH = 5000


def main() -> None:
    from tests.bench.harness import bench_url, setup_database

    url = bench_url("_ab_integrity")
    setup_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    from compute.ingest import usage_batch_apply
    from compute.integrity import pipeline
    from compute.models import Redemption, RedemptionStatus, UsageBatch
    from portal.audit import SYSTEM
    from tests.bench.harness import bench_records, bench_world, integrity_rules
    from vouchers.ledger import voucher_issue

    _city, program, dc, _registration, company = bench_world()
    codes = []
    for _ in range(VOUCHERS):
        v = voucher_issue(
            program=program,
            company=company,
            amount=Decimal("1500000.00"),
            actor=SYSTEM,
            valid_from=date(2026, 11, 1),
        )
        Redemption.objects.create(
            voucher=v, data_center=dc, contract_ref="B", status=RedemptionStatus.ACTIVE
        )
        codes.append(v.code)
    integrity_rules(program, company)

    real_checks, real_flags = pipeline.program_checks, pipeline.batch_flags
    spent: dict[str, list[float]] = {"on": [], "off": []}
    current = ["on"]

    def checks_off(program_ids):  # the query runs; the rules read as none
        real_checks(program_ids)
        return {}

    def timed_flags(**kwargs):
        start = time.perf_counter()
        result = real_flags(**kwargs)
        spent[current[0]].append(1000 * (time.perf_counter() - start))
        return result

    from compute.ingest import apply

    times: dict[str, list[float]] = {"on": [], "off": []}
    cpu: dict[str, list[float]] = {"on": [], "off": []}
    tag = f"ab-{time.time_ns()}"
    # One batch of each side first, not counted: caches, plans, the first rollup rows.
    for r in range(-1, ROUNDS):
        for side in ("on", "off") if r % 2 == 0 else ("off", "on"):
            records = bench_records(codes, BATCH, prefix=f"{tag}-{r}-{side}")
            batch = UsageBatch.objects.create(
                data_center=dc, body_hash="-", received=BATCH, body=json.dumps({"records": records})
            )
            pipeline.program_checks = real_checks if side == "on" else checks_off
            current[0] = side
            apply.batch_flags = timed_flags  # type: ignore[assignment]
            wall, proc = time.perf_counter(), time.process_time()
            usage_batch_apply(batch_id=batch.pk)
            if r >= 0:
                times[side].append(1000 * (time.perf_counter() - wall))
                cpu[side].append(1000 * (time.process_time() - proc))
            batch.refresh_from_db()
            assert batch.accepted == BATCH, (side, batch.accepted)
    pipeline.program_checks, apply.batch_flags = real_checks, real_flags
    from compute.integrity.models import Finding

    assert not Finding.objects.exists(), "the checks fired on ordinary traffic"
    on, off = statistics.median(times["on"]), statistics.median(times["off"])
    # Each round's two batches ran back to back: the median of their differences is
    # the least disturbed by the machine's load changing between rounds.
    paired = statistics.median(a - b for a, b in zip(times["on"], times["off"], strict=True))
    paired_cpu = statistics.median(a - b for a, b in zip(cpu["on"], cpu["off"], strict=True))
    con, coff = statistics.median(cpu["on"]), statistics.median(cpu["off"])
    print(f"batches of {BATCH:,} over {VOUCHERS:,} vouchers, {ROUNDS} of each side, alternated")
    print(f"checks on:  median {on:.0f} ms wall, {con:.0f} ms CPU a batch")
    print(f"checks off: median {off:.0f} ms wall, {coff:.0f} ms CPU a batch")
    print(
        f"the checks (batch_flags): median {statistics.median(spent['on']):.1f} ms on, "
        f"{statistics.median(spent['off']):.1f} ms off; "
        f"difference wall {100 * (on / off - 1):+.1f}%, CPU {100 * (con / coff - 1):+.1f}%"
    )
    print(
        f"paired (round by round): on - off median {paired:+.1f} ms wall "
        f"({100 * paired / off:+.1f}%), {paired_cpu:+.1f} ms CPU ({100 * paired_cpu / coff:+.1f}%)"
    )
    print(f"records/s: on {BATCH * 1000 / on:,.0f}, off {BATCH * 1000 / off:,.0f}")
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
