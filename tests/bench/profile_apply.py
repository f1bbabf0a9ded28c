"""Where applying a usage batch spends its time, statement by statement and step by step.

Run after `make bench` (it reuses that database, `<name>_bench`, with its 1,000 vouchers):

    .venv/bin/python tests/bench/profile_apply.py              # 4 batches of 5,000
    PROFILE_BATCHES=10 PROFILE_SIZE=500 .venv/bin/python tests/bench/profile_apply.py
    PROFILE_EXPLAIN="UPDATE vouchers_voucher" .venv/bin/python ...

Batches are stored directly (no HTTP) and applied in this process, one after another;
the figures are milliseconds per batch for each statement and for the Python steps of
`compute.ingest` marked "(Python)", which include the statements they run (`_charge` is
everything under the locks, `_write_records` includes the records' COPY); the last line
is what the top-level steps leave (reads before them, commit, Django). With
PROFILE_EXPLAIN, the first statement containing each given text runs under EXPLAIN
(ANALYZE, BUFFERS) and its plan is printed; only use it for statements that return no
rows. It prints figures; it asserts nothing.
"""

from __future__ import annotations

import collections
import gc
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BATCHES = int(os.environ.get("PROFILE_BATCHES", "4"))
SIZE = int(os.environ.get("PROFILE_SIZE", "5000"))
EXPLAIN = [t for t in os.environ.get("PROFILE_EXPLAIN", "").split(",") if t]


def main() -> None:
    sys.path.insert(0, str(ROOT))  # as a script, the repository is not on the path
    from tests.bench.harness import batch_stored, bench_reused

    codes = bench_reused()
    from django.db import connection

    from compute.ingest import usage_batch_apply

    tag = f"profile-{time.time_ns()}"
    ids = [batch_stored(codes, SIZE, prefix=f"{tag}-{b}") for b in range(BATCHES)]

    gc.collect()
    gc.freeze()  # as the Celery worker does at start (portal.celery)
    spent: dict[str, float] = collections.defaultdict(float)
    explained: set[str] = set()

    def timed(execute, sql, params, many, context):
        start = time.perf_counter()
        wanted = [t for t in EXPLAIN if t in sql and t not in explained]
        try:
            if wanted and not many:
                explained.update(wanted)
                result = execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params, many, context)
                print("\n".join(row[0] for row in context["cursor"].fetchall()), end="\n\n")
                return result
            return execute(sql, params, many, context)
        finally:
            spent[" ".join(sql.split())[:72]] += time.perf_counter() - start

    # The Python steps of applying, timed like the statements.
    from compute.ingest import apply as usage  # the names `_apply` calls, patched there

    def python_step(name, function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[f"(Python) {name}"] += time.perf_counter() - start

        setattr(usage, name, wrapper)

    for name in (
        "body_records",
        "stage",
        "plan",
        "_write_records",
        "_vouchers_stand",
        "_redemptions_take",
        "settle",
        "results",
        "_charge",
        "ledger_charge_many",
        "batch_flags",  # the in-pipeline integrity checks (compute/integrity/pipeline.py)
        "batch_raise",
    ):
        python_step(name, getattr(usage, name))

    start = time.perf_counter()
    with connection.execute_wrapper(timed):
        for batch_id in ids:
            usage_batch_apply(batch_id=batch_id)
    total = time.perf_counter() - start
    print(
        f"{BATCHES} batches of {SIZE}: {1000 * total / BATCHES:.1f} ms per batch, "
        f"{BATCHES * SIZE / total:,.0f} records/s applied in one process"
    )
    for statement, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"{1000 * seconds / BATCHES:8.1f} ms  {statement}")
    steps = ("body_records", "stage", "plan", "_write_records", "results", "batch_flags", "_charge")
    rest = total - sum(spent[f"(Python) {name}"] for name in steps)
    print(f"{1000 * rest / BATCHES:8.1f} ms  (outside those steps: reads, commit, Django)")


if __name__ == "__main__":
    main()
