"""CPU per batch of applying usage, by function: this process's (Python) and its
PostgreSQL backend's, for comparing two trees on a machine other jobs share.

Run after `make bench` (it reuses that database, `<name>_bench`):

    .venv/bin/python tests/bench/cpu_by_function.py          # 16 batches of 5,000
    CPU_BATCHES=8 CPU_SIZE=1000 .venv/bin/python tests/bench/cpu_by_function.py

Batches are stored directly and applied one after another in this process; each
top-level function of `compute.ingest.apply` is wrapped and charged the process's
`time.process_time()` and the backend's CPU ticks from `/proc/<pid>/stat` (10 ms a tick:
the PostgreSQL column is rough; use many batches). Wall-clock records/s move with the
machine's other load, CPU seconds much less (docs/performance.md). Prints figures;
asserts nothing.
"""

from __future__ import annotations

import collections
import gc
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BATCHES = int(os.environ.get("CPU_BATCHES", "16"))
SIZE = int(os.environ.get("CPU_SIZE", "5000"))
STEPS = (
    "body_records", "stage", "registered_vouchers", "voucher_charge_terms",
    "active_redemptions", "plan", "_write_records", "results", "_finish", "batch_flags",
    "_charge", "vouchers_lock", "ledger_charge_many", "_redemptions_take", "usage_sums",
    "rollups_add_batch", "batch_raise",
)  # fmt: skip


def main() -> None:
    sys.path.insert(0, str(ROOT))  # as a script, the repository is not on the path
    from tests.bench.harness import batch_stored, bench_reused

    codes = bench_reused()
    from django.db import connection

    from compute.ingest import apply, usage_batch_apply

    tag = f"cpu-{time.time_ns()}"
    ids = [batch_stored(codes, SIZE, prefix=f"{tag}-{b}") for b in range(BATCHES + 1)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = f"/proc/{cursor.fetchone()[0]}/stat"
    tick = os.sysconf("SC_CLK_TCK")

    def backend_cpu() -> float:
        fields = Path(backend).read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    python: dict[str, float] = collections.defaultdict(float)
    database: dict[str, float] = collections.defaultdict(float)

    def timed(name, function):
        def wrapper(*args, **kwargs):
            cpu, db = time.process_time(), backend_cpu()
            try:
                return function(*args, **kwargs)
            finally:
                python[name] += time.process_time() - cpu
                database[name] += backend_cpu() - db

        return wrapper

    for name in STEPS:
        if hasattr(apply, name):
            setattr(apply, name, timed(name, getattr(apply, name)))
    gc.collect()
    gc.freeze()  # as the Celery worker does at start (portal.celery)
    usage_batch_apply(batch_id=ids[0])  # warm-up, not counted
    python.clear()
    database.clear()
    cpu, db = time.process_time(), backend_cpu()
    for batch_id in ids[1:]:
        usage_batch_apply(batch_id=batch_id)
    cpu, db = time.process_time() - cpu, backend_cpu() - db
    print(f"{BATCHES} batches of {SIZE}, ms per batch: Python {1000 * cpu / BATCHES:.1f},"
          f" PostgreSQL backend {1000 * db / BATCHES:.1f}")  # fmt: skip
    for name in STEPS:
        if name in python:
            print(
                f"  {name:22s} Python {1000 * python[name] / BATCHES:6.1f}"
                f"  PostgreSQL {1000 * database[name] / BATCHES:6.1f}"
            )


if __name__ == "__main__":
    main()
