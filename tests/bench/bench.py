"""`make bench`: the figures of issue #17 in one run, a table, and bench-results.json.

In a database of its own (`<DATABASE_URL's name>_bench`, recreated): a city with four
data centers registered, 2,000 vouchers redeemed at each (one key per data center), the
integrity checks on (bands, plans: every check runs, none fires). gunicorn as deployed
(portal.gunicorn_conf: gthread, 2 processes × 4 threads) and a Celery worker of one
process more than the cores, then:

1. **Ingestion** end to end: 200,000 records over the 2,000 vouchers from the four data
   centers at once (each its contiguous quarter, its own key), in batches of 1,000 and
   then of 5,000; beside the **ceiling**: `COPY` of the same rows into a plain table with
   the same unique key, median of three. `ingest_vs_copy` is the lower of the two
   batch sizes' ratios. Worker CPU seconds per 100,000 records (the figure least moved
   by the machine's other load) and where the CPU went, per run.
2. **Scaling**: 20,000 vs 200,000 records (batches of 1,000: the time ratio); 1, 2 and
   3 worker processes on 40,000 records each; batches of 1,000 records on 10 vouchers
   each (40,000 records) beside the same on all vouchers.
3. **Reads**: the voucher look-up under 32 connections beside `GET /api/v1/ping`; the
   review queue of a small `seed_scale` city beside the profile page.
4. **Month-end**: every statement of a month with BENCH_MONTH_RECORDS records (servers
   stopped), extrapolated linearly to 20,000,000 (`make bench-monthend` for the real one).

    make bench                       # ~5 minutes on the shared 2-core machine
    BENCH_QUICK=1 make bench         # CI-sized: a few thousand records per figure
    BENCH_MONTH_RECORDS=5000000 BENCH_QUEUE_SCALE="20000 4000 200000" make bench
    BENCH_RESULTS=/tmp/r.json make bench

It prints figures and their targets; it asserts nothing (exit 0 when the run finished).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

QUICK = os.environ.get("BENCH_QUICK") == "1"
# (full, quick) sizes; each can be set by its environment variable.
SIZES = {
    "BENCH_VOUCHERS": (2000, 200),
    "BENCH_RECORDS": (200_000, 8_000),
    "BENCH_SMALL_RECORDS": (20_000, 800),
    "BENCH_SCALING_RECORDS": (40_000, 4_000),
    "BENCH_MONTH_RECORDS": (4_000_000, 20_000),
    "BENCH_READ_SECONDS": (8, 2),
    "BENCH_QUEUE_REQUESTS": (20, 5),
}
QUEUE_SCALE = ("20000 4000 200000", "200 50 1000")  # applications vouchers records
DATA_CENTERS = 4
BATCHES = (1000, 5000)
FEW_VOUCHERS = 10
TARGETS = {
    "ingest_vs_copy": ("≥", 0.25),
    "time_ratio_10x_records": ("≤", 11.0),
    "voucher_vs_ping": ("≥", 0.5),
}


def size(name: str) -> int:
    return int(os.environ.get(name) or SIZES[name][QUICK])


def _collectstatic(queue: str) -> None:
    """Without DEBUG the pages need the static files' manifest (var/static)."""
    from tests.bench.harness import server_env

    env = server_env(queue)
    command = [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"]
    subprocess.run(command, cwd=ROOT, env=env, check=True)


def _setup():
    from tests.bench.harness import bench_django

    os.environ["DJANGO_SECRET_KEY"] = "bench-only"  # the sessions this process signs in
    queue = f"bench-{os.getpid()}"
    os.environ["CELERY_QUEUE"] = queue
    os.environ["CACHE_KEY_PREFIX"] = queue
    bench_django("_bench")
    _collectstatic(queue)
    return queue


def _world():
    from compute.services import api_key_issue
    from portal.audit import SYSTEM
    from tests.bench.harness import (
        bench_vouchers,
        bench_world,
        integrity_rules,
        more_data_centers,
    )

    city, program, dc, _registration, company = bench_world()
    centers = [dc, *more_data_centers(city, program, DATA_CENTERS - 1)]
    codes = bench_vouchers(program, company, centers, size("BENCH_VOUCHERS"))
    integrity_rules(program, company)
    keys = [api_key_issue(data_center=c, actor=SYSTEM)[1] for c in centers]
    return city, centers, codes, keys


def _ingestion(stack, keys, codes, centers, results: dict) -> None:
    from tests.bench.bench_ingestion import ingest
    from tests.bench.harness import copy_ceiling

    records, small, scaling = (
        size("BENCH_RECORDS"),
        size("BENCH_SMALL_RECORDS"),
        size("BENCH_SCALING_RECORDS"),
    )
    runs: dict[str, dict] = {}

    def run(name: str, **kwargs) -> list[dict]:
        runs[name], rows = ingest(stack, keys, codes, label=name, **kwargs)
        return rows

    run("warm-up", records=4 * BATCHES[0], batch=BATCHES[0])  # the workers' first imports
    del runs["warm-up"]
    run("records_small", records=small, batch=BATCHES[0])
    for batch in BATCHES:
        rows = run(f"batch_{batch}", records=records, batch=batch)
    run(
        "few_vouchers",
        records=scaling,
        batch=BATCHES[0],
        vouchers_per_batch=FEW_VOUCHERS,
    )
    for workers in (1, 2, 3):
        stack.restart_worker(workers)
        run(f"workers_{workers}", records=scaling, batch=BATCHES[0])
    copies = copy_ceiling(rows, [c.pk for c in centers])
    copy_s = sorted(copies)[1]
    ceiling = records / copy_s
    print(
        f"  COPY ceiling: {records:,} rows in {copy_s:.2f} s = {ceiling:,.0f} rows/s "
        f"(median of {', '.join(f'{s:.2f}' for s in copies)} s)",
        flush=True,
    )
    by_batch = {str(b): round(runs[f"batch_{b}"]["records_per_s"] / ceiling, 4) for b in BATCHES}
    results["ingestion"] = {
        "runs": runs,
        "copy_ceiling": {
            "rows": records,
            "seconds": [round(s, 3) for s in copies],
            "median_seconds": round(copy_s, 3),
            "rows_per_s": round(ceiling, 1),
        },
        "ingest_vs_copy_by_batch": by_batch,
    }
    results["ingest_vs_copy"] = min(by_batch.values())
    results["worker_cpu_s_per_100k"] = {
        str(b): runs[f"batch_{b}"]["worker_cpu_s_per_100k"] for b in BATCHES
    }
    wide = runs["workers_3"]
    results["scaling"] = {
        "records": [small, records],
        "time_ratio_10x_records": round(
            runs[f"batch_{BATCHES[0]}"]["seconds"] / runs["records_small"]["seconds"], 2
        ),
        "records_ratio": round(records / small, 2),
        "workers_records": scaling,
        "records_per_s_by_workers": {
            str(w): runs[f"workers_{w}"]["records_per_s"] for w in (1, 2, 3)
        },
        "few_vouchers": {
            "vouchers_per_batch": FEW_VOUCHERS,
            "records_per_s": runs["few_vouchers"]["records_per_s"],
            "all_vouchers_records_per_s": wide["records_per_s"],
            "ratio": round(runs["few_vouchers"]["records_per_s"] / wide["records_per_s"], 3),
        },
    }


def _reads(stack, keys, codes, results: dict) -> None:
    from tests.bench.bench_reads import api_reads, queue_reads, seed_queue_city

    api = api_reads(stack.port, keys[0], codes, seconds=size("BENCH_READ_SECONDS"))
    scale = [int(x) for x in os.environ.get("BENCH_QUEUE_SCALE", QUEUE_SCALE[QUICK]).split()]
    start = time.perf_counter()
    city = seed_queue_city(scale)
    print(f"  seed_scale {scale} in {time.perf_counter() - start:.0f} s", flush=True)
    queue = queue_reads(stack.port, city, size("BENCH_QUEUE_REQUESTS"))
    results["reads"] = {"api": api, "queue": queue}
    results["voucher_vs_ping"] = api["voucher_vs_ping"]


def _met(key: str, value: float) -> str:
    sign, target = TARGETS[key]
    ok = value >= target if sign == "≥" else value <= target
    return f"{sign} {target:g} ({'met' if ok else 'NOT met'})"


def table(r: dict) -> str:
    ing, sc, reads, month = r["ingestion"], r["scaling"], r["reads"], r["monthend"]
    rows = []
    for b in BATCHES:
        run = ing["runs"][f"batch_{b}"]
        rows.append(
            (
                f"ingestion, {run['records']:,} records, batches of {b:,}",
                f"{run['records_per_s']:,.0f} records/s, {run['seconds']:.1f} s; worker "
                f"{run['worker_cpu_s_per_100k']:.2f} CPU s per 100k",
                f"{ing['ingest_vs_copy_by_batch'][str(b)]:.3f} of COPY",
            )
        )
    c = ing["copy_ceiling"]
    rows += [
        ("COPY ceiling (median of 3)", f"{c['rows_per_s']:,.0f} rows/s", ""),
        (
            "ingest_vs_copy (the lower batch size's)",
            f"{r['ingest_vs_copy']:.3f}",
            _met("ingest_vs_copy", r["ingest_vs_copy"]),
        ),
        (
            f"time, {sc['records'][1]:,} vs {sc['records'][0]:,} records",
            f"{sc['time_ratio_10x_records']:.2f}× for {sc['records_ratio']:g}×",
            _met("time_ratio_10x_records", sc["time_ratio_10x_records"]),
        ),
        (
            f"worker processes 1 / 2 / 3 ({sc['workers_records']:,} records)",
            " / ".join(f"{v:,.0f}" for v in sc["records_per_s_by_workers"].values()) + " records/s",
            "",
        ),
        (
            f"{sc['few_vouchers']['vouchers_per_batch']} vouchers per batch vs all",
            f"{sc['few_vouchers']['records_per_s']:,.0f} vs "
            f"{sc['few_vouchers']['all_vouchers_records_per_s']:,.0f} records/s",
            f"{sc['few_vouchers']['ratio']:.2f}×",
        ),
        (
            "voucher look-up vs ping, 32 connections",
            f"{reads['api']['voucher_lookup']['requests_per_s']:,.0f} vs "
            f"{reads['api']['ping']['requests_per_s']:,.0f} req/s",
            f"{r['voucher_vs_ping']:.3f}, " + _met("voucher_vs_ping", r["voucher_vs_ping"]),
        ),
        (
            "review queue vs profile page (median ms)",
            f"{reads['queue']['review_queue']['median_ms']:.1f} vs "
            f"{reads['queue']['trivial_page']['median_ms']:.1f} ms",
            f"{reads['queue']['queue_vs_trivial']:.2f} of its speed",
        ),
        (
            f"month-end, {month['records']:,} records, {month['statements']} statements",
            f"{month['seconds']:.1f} s; peak RSS builder {month['peak_rss_mb_builder']:.0f} MB,"
            f" PostgreSQL backend {month['peak_rss_mb_postgres_backend']:.0f} MB",
            (
                f"20M: ~{month['extrapolated_seconds_20m']:.0f} s (linear extrapolation)"
                if "extrapolated_seconds_20m" in month
                else ""
            ),
        ),
    ]
    m = r["machine"]
    out = [
        f"commit {m['commit'][:10]}{' (uncommitted changes)' if m['commit_dirty'] else ''}, "
        f"{m['cpu_count']} × {m['cpu_model']}, load average {r['load_average_start'][0]:.2f} "
        f"at start, {r['load_average_end'][0]:.2f} at end; {r['seconds_total']:.0f} s"
        + (" (BENCH_QUICK)" if r["quick"] else ""),
        "",
        "| figure | measured | ratio / target |",
        "|---|---|---|",
    ]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(out)


def main() -> None:
    from tests.bench.bench_ingestion import Stack
    from tests.bench.bench_monthend import monthend
    from tests.bench.harness import machine

    started = time.perf_counter()
    results: dict = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "quick": QUICK,
        "sizes": {name: size(name) for name in SIZES},
        "targets": {k: f"{s} {t}" for k, (s, t) in TARGETS.items()},
    }
    queue = _setup()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    t0 = time.perf_counter()
    city, centers, codes, keys = _world()
    print(
        f"world: {len(centers)} data centers, {len(codes):,} vouchers in "
        f"{time.perf_counter() - t0:.0f} s",
        flush=True,
    )
    stack = Stack(queue=queue, raw_key=keys[0], workers=(os.cpu_count() or 1) + 1)
    results["servers"] = {
        "gunicorn": "portal.gunicorn_conf (gthread, WEB_CONCURRENCY × GUNICORN_THREADS): "
        f"{os.environ.get('WEB_CONCURRENCY', '2')} × {os.environ.get('GUNICORN_THREADS', '4')}",
        "celery_worker_processes": stack.workers,
    }
    stack.start()
    try:
        _ingestion(stack, keys, codes, centers, results)
        _reads(stack, keys, codes, results)
    finally:
        stack.stop()
    results["monthend"] = monthend(city, size("BENCH_MONTH_RECORDS"))
    results["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    results["seconds_total"] = round(time.perf_counter() - started, 1)
    path = Path(os.environ.get("BENCH_RESULTS") or ROOT / "bench-results.json")
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print()
    print(table(results))
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
