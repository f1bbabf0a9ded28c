"""Benchmark of usage ingestion, end to end, beside PostgreSQL COPY of the same rows.

Pushes 100,000 usage records over 1,000 vouchers through the real HTTP API (Django's
server) and a real Celery worker, waits until every batch is applied, and prints records
per second. Then COPYs the same rows into a plain table with the same unique key, in the
same run, and prints that figure and the ratio. It prints figures; it asserts nothing.

    make bench            # or: .venv/bin/python tests/bench/bench_ingestion.py
    BENCH_WORKERS=2 make bench    # worker processes (default: one more than the cores)
Uses DATABASE_URL's server with a database of its own (`<name>_bench`, recreated).
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
RECORDS = int(os.environ.get("BENCH_RECORDS", "100000"))
VOUCHERS = int(os.environ.get("BENCH_VOUCHERS", "1000"))
BATCH = 5000
PUSHERS = 2
# Worker processes: one more than the cores. A worker applying a batch waits for the
# vouchers' locks another holds and for PostgreSQL; with two on two cores, a core stood
# idle ~12% of the run (~1.1 of 9 core-seconds), with three ~7% (README, Benchmark).
WORKERS = int(os.environ.get("BENCH_WORKERS") or (os.cpu_count() or 1) + 1)
# The in-pipeline integrity checks (price band, plan; compute/integrity/pipeline.py) on
# every record, finding nothing, as on ordinary traffic; BENCH_INTEGRITY=0: no rules.
INTEGRITY = os.environ.get("BENCH_INTEGRITY", "1") != "0"


def bench_url(suffix: str = "_bench") -> str:
    """DATABASE_URL's server, a database of the benchmark's own (recreated each run)."""
    url = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/suanli"
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + suffix))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup_database(url: str) -> None:
    import psycopg

    admin = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def _cpu_split(web_pid: int, worker_pid: int) -> dict[str, float]:
    """CPU seconds used so far by the web server, the Celery worker (with its pool
    processes), PostgreSQL's processes and everything else: where the cores go."""
    import psutil

    def tree(pid: int) -> set[int]:
        try:
            return {pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))}
        except psutil.NoSuchProcess:
            return set()

    web, worker = tree(web_pid), tree(worker_pid)
    split = {"web": 0.0, "worker": 0.0, "postgres": 0.0, "other": 0.0}
    machine = psutil.cpu_times()
    split["idle"] = machine.idle + getattr(machine, "iowait", 0.0)
    split["steal"] = getattr(machine, "steal", 0.0)
    for proc in psutil.process_iter(["name", "cpu_times"]):
        times = proc.info["cpu_times"]
        if times is None:
            continue
        if proc.pid in web:
            key = "web"
        elif proc.pid in worker:
            key = "worker"
        elif proc.info["name"] == "postgres":
            key = "postgres"  # the postmaster's children times hold exited backends'
            split[key] += times.children_user + times.children_system
        else:
            key = "other"
        split[key] += times.user + times.system
    return split


def bench_records(codes: list[str], count: int, prefix: str) -> list[dict]:
    """`count` usage records, record *i* on voucher *i* mod len(codes)."""
    return [
        {
            "record_id": f"{prefix}-{i:08d}",
            "voucher": codes[i % len(codes)],
            "started_at": "2026-11-02T08:00:00+08:00",
            "ended_at": "2026-11-02T20:00:00+08:00",
            "resource": "Ascend 910B" if i % 3 else "NVIDIA H20",
            "domestic": bool(i % 3),
            "quantity": "12.000",
            "amount": f"{120 + i % 97}.50",
        }
        for i in range(count)
    ]


def _integrity_rules(program, company) -> None:
    """Bands both models' prices fall in, a plan per voucher far above its usage, and
    rules that check the plan and hold what is flagged: every check runs, none fires."""
    from compute.integrity.models import IntegrityRules, PriceBand
    from vouchers.models import Application, ComputePlanRow, Voucher

    for accelerator in ("Ascend 910B", "NVIDIA H20"):
        PriceBand.objects.create(
            program=program,
            accelerator=accelerator,
            reference_price=Decimal("14"),
            tolerance_percent=Decimal("50"),
        )
    IntegrityRules.objects.create(program=program, check_plan=True, hold_charges=True)
    user = _bench_user()
    vouchers = list(Voucher.objects.filter(program=program).order_by("id"))
    apps = Application.objects.bulk_create(
        Application(
            city_id=program.city_id,
            program=program,
            company=company,
            created_by=user,
            state="approved",
        )
        for _ in vouchers
    )
    ComputePlanRow.objects.bulk_create(
        ComputePlanRow(application=app, accelerator=accelerator, hours=Decimal("1000000"))
        for app in apps
        for accelerator in ("Ascend 910B", "NVIDIA H20")
    )
    for voucher, app in zip(vouchers, apps, strict=True):
        voucher.application = app
    Voucher.objects.bulk_update(vouchers, ["application"])
    print("integrity checks: on (price bands, plan; BENCH_INTEGRITY=0 for none)")


def _bench_user():
    from portal.models import User

    return User.objects.create_user(email="bench@bench.test", password=None)


def bench_world():
    """The benchmarks' city, program, data center (registered there), registration and
    company; vouchers are each benchmark's own. Django must be set up and migrated."""
    from compute.models import DataCenter, Registration
    from portal.models import City
    from vouchers.models import Company, Program

    city = City.objects.create(slug="bench", code="BN", name_zh="基准市", name_en="Bench")
    program = Program.objects.create(
        city=city,
        slug="bench",
        name_zh="基准",
        name_en="Bench",
        status="open",
        budget=Decimal("2000000000.00"),
        award_min=Decimal("1"),
        award_max=Decimal("2000000"),
        rate_domestic=Decimal("0.30"),
        rate_other=Decimal("0.20"),
    )
    dc = DataCenter.objects.create(
        slug="bench",
        name_zh="基准",
        name_en="Bench",
        operator_zh="x",
        operator_en="x",
        hub="guizhou",
        cluster_zh="x",
        cluster_en="x",
    )
    dc.programs.add(program)
    registration = Registration.objects.create(
        city=city, data_center=dc, starts_on=date(2026, 1, 1)
    )
    company = Company.objects.create(legal_name="基准公司", credit_code="91110000000000000X")
    return city, program, dc, registration, company


def main() -> None:
    url = bench_url()
    setup_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ["API_RATE_LIMIT"] = "100000/min"
    os.environ["CELERY_QUEUE"] = "bench"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    from compute.models import Redemption, RedemptionStatus
    from compute.services import api_key_issue
    from portal.audit import SYSTEM
    from vouchers.ledger import voucher_issue

    _city, program, dc, _registration, company = bench_world()
    codes = []
    t0 = time.perf_counter()
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
    print(f"setup: {VOUCHERS} vouchers in {time.perf_counter() - t0:.1f} s")
    if INTEGRITY:
        _integrity_rules(program, company)
    _key, raw_key = api_key_issue(data_center=dc, actor=SYSTEM)

    rows = bench_records(codes, RECORDS, prefix="bench")
    # Bodies are encoded before the clock starts: that is the data center's work, on
    # its own machines; what is measured is the portal's.
    bodies = [
        json.dumps({"records": rows[i : i + BATCH]}).encode() for i in range(0, RECORDS, BATCH)
    ]

    env = {
        **os.environ,
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "bench-only",
        # The key the vouchers were issued with: their ledger chains continue in the worker.
        "AUDIT_CHAIN_KEY": settings.AUDIT_CHAIN_KEY,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "LOG_LEVEL": "WARNING",
    }
    port = _free_port()
    web = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "runserver",
            f"127.0.0.1:{port}",
            "--noreload",
            "--skip-checks",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "portal",
            "worker",
            "-Q",
            "bench",
            "-c",
            str(WORKERS),
            "--without-gossip",
            "--without-mingle",
            "-l",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
    )
    import httpx

    try:
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {raw_key}"}
        client = httpx.Client(base_url=base, headers=headers, timeout=120)
        for _ in range(100):
            try:
                client.get("/api/v1/redemptions")
                break
            except httpx.TransportError:
                time.sleep(0.2)
        from portal.celery import app

        for _ in range(100):
            if app.control.ping(timeout=0.5):
                break

        def post(body):
            r = client.post(
                "/api/v1/usage/batches",
                content=body,
                headers={"Content-Type": "application/json"},
            )
            r.raise_for_status()
            return r.json()["id"]

        cpu_before = _cpu_split(web.pid, worker.pid)
        start = time.perf_counter()
        with ThreadPoolExecutor(PUSHERS) as pool:
            ids = list(pool.map(post, bodies))
        pushed = time.perf_counter() - start
        from compute.models import UsageBatch

        while UsageBatch.objects.filter(pk__in=ids).exclude(status="done").exists():
            time.sleep(0.05)
        elapsed = time.perf_counter() - start
        cpu_after = _cpu_split(web.pid, worker.pid)
        accepted = sum(UsageBatch.objects.filter(pk__in=ids).values_list("accepted", flat=True))
    finally:
        web.terminate()
        worker.terminate()
        web.wait()
        worker.wait()

    e2e = RECORDS / elapsed
    print(
        "CPU seconds while pushing and applying: "
        + ", ".join(f"{k} {cpu_after[k] - cpu_before.get(k, 0):.2f}" for k in cpu_after)
        + f" (wall {elapsed:.2f} s on {os.cpu_count()} cores, {WORKERS} worker processes)"
    )
    print(
        f"end to end: {RECORDS} records ({accepted} accepted) in {elapsed:.2f} s "
        f"(all POSTs answered after {pushed:.2f} s) = {e2e:,.0f} records/s"
    )

    # The same rows, COPYed into a plain table with the same unique key.
    from django.db import connection

    buffer = io.StringIO()
    for r in rows:
        buffer.write(
            f"{dc.pk}\t{r['record_id']}\t{r['voucher']}\t{r['started_at']}\t"
            f"{r['ended_at']}\t{r['resource']}\t{r['domestic']}\t{r['quantity']}\t"
            f"{r['amount']}\n"
        )
    data = buffer.getvalue()
    # Three times, into a fresh table each: this shared machine's speed drifts, and one
    # figure alone moved the ratio by a third between runs. The median is compared.
    copies = []
    with connection.cursor() as cursor:
        for _ in range(3):
            cursor.execute(
                "DROP TABLE IF EXISTS copy_bench; CREATE TABLE copy_bench ("
                "data_center_id bigint, record_id varchar(64), "
                "voucher varchar(24), started_at timestamptz, ended_at timestamptz, "
                "resource varchar(64), domestic boolean, quantity numeric(14,3), "
                "amount numeric(14,2), UNIQUE (data_center_id, record_id))"
            )
            start = time.perf_counter()
            with cursor.copy("COPY copy_bench FROM STDIN") as copy:
                copy.write(data)
            copies.append(time.perf_counter() - start)
        cursor.execute("DROP TABLE copy_bench")
    copy_s = sorted(copies)[1]
    copy_rate = RECORDS / copy_s
    print(
        f"COPY: {RECORDS} rows in {copy_s:.2f} s = {copy_rate:,.0f} rows/s "
        f"(median of {', '.join(f'{s:.2f}' for s in copies)} s)"
    )
    print(f"end to end is {100 * e2e / copy_rate:.1f}% of COPY (target: at least 15%)")


if __name__ == "__main__":
    main()
