"""What the benchmarks share: their databases, their world (a city, a program, data
centers, vouchers redeemed at each), the processes they measure (gunicorn as deployed,
Celery workers), where the CPU went, and the `COPY` ceiling the ingestion is compared
with. Scripts import from here; Django must be set up for the world and the ceiling."""

from __future__ import annotations

import io
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager, suppress
from datetime import date
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
# The day of the benchmark's usage records, and the vouchers' first valid day: a month
# before it, so the month-end benchmark (bench_monthend.py) can fill the month before
# the ingested records' without touching them.
USAGE_DAY = "2026-11-02"
VALID_FROM = date(2026, 10, 1)


# --- databases and processes -------------------------------------------------------------


def bench_url(suffix: str = "_bench") -> str:
    """DATABASE_URL's server, a database of the benchmark's own (recreated each run)."""
    url = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/suanli"
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + suffix))


def setup_database(url: str) -> None:
    import psycopg

    admin = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def bench_django(suffix: str) -> str:
    """A fresh database of the benchmark's own (DATABASE_URL's name + `suffix`), Django
    set up on it (portal.settings unless DJANGO_SETTINGS_MODULE says) and migrated."""
    url = bench_url(suffix)
    setup_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return url


def bench_reused() -> list[str]:
    """Django set up on the database the last `make bench` left (`<name>_bench`, kept
    until the next run), for the scripts that apply batches in one process; returns the
    codes of its vouchers, in id order."""
    os.environ["DATABASE_URL"] = bench_url()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from vouchers.models import Voucher

    return list(Voucher.objects.order_by("id").values_list("code", flat=True))


def batch_stored(codes: list[str], size: int, prefix: str) -> int:
    """A batch of `size` benchmark records from data center `bench`, stored as a POST
    stores it and not applied; its id."""
    import json

    from compute.models import DataCenter, UsageBatch

    records = bench_records(codes, size, prefix=prefix)
    return UsageBatch.objects.create(
        data_center=DataCenter.objects.get(slug="bench"),
        body_hash="-",
        received=size,
        body=json.dumps({"records": records}),
    ).pk


def git(*args: str) -> str:
    """What `git *args` prints in the repository ("" without git)."""
    try:
        return subprocess.run(
            ["git", *args],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    """Stop a process started in a session of its own, with its children."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def server_env(queue: str, **extra: str) -> dict[str, str]:
    """The environment of the servers a benchmark starts: production settings (no
    DEBUG), its own Celery queue and cache prefix, the rate limit lifted (a benchmark's
    few keys would otherwise measure 429s), and this process's keys — the ledger's
    chain and the sessions it signs in continue in the servers."""
    from django.conf import settings

    return {
        **os.environ,
        "CELERY_QUEUE": queue,
        "CACHE_KEY_PREFIX": queue,
        "API_RATE_LIMIT": "100000000/min",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "AUDIT_CHAIN_KEY": settings.AUDIT_CHAIN_KEY,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "LOG_LEVEL": "WARNING",
        **extra,
    }


def spawn(command: list[str], env: dict[str, str], log) -> subprocess.Popen:
    """`command` in the repository, output to `log`, in a session of its own: stopped
    (`stop`) with its children — gunicorn's workers, Celery's pool — and only those."""
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def start_gunicorn(env: dict[str, str], port: int, log) -> subprocess.Popen:
    """gunicorn as deployed (docker/entrypoint.sh: portal.gunicorn_conf, gthread,
    WEB_CONCURRENCY × GUNICORN_THREADS, default 2 × 4), bound to a local port."""
    command = [sys.executable, "-m", "gunicorn", "-c", "python:portal.gunicorn_conf"]
    return spawn([*command, "portal.wsgi"], {**env, "GUNICORN_BIND": f"127.0.0.1:{port}"}, log)


def start_celery(env: dict[str, str], queue: str, concurrency: int, log) -> subprocess.Popen:
    """A Celery worker of `concurrency` pool processes on the benchmark's queue."""
    command = [sys.executable, "-m", "celery", "-A", "portal", "worker", "-Q", queue]
    command += ["-n", f"{queue}@%h", "-c", str(concurrency), "-l", "WARNING"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    return spawn(command, env, log)


def wait_ready(port, raw_key, web, worker, queue, celery_app) -> None:
    """Until gunicorn answers an authenticated request and the worker a ping (60 s)."""
    import httpx

    deadline = time.monotonic() + 60
    while web is not None:
        if web.poll() is not None or (worker is not None and worker.poll() is not None):
            raise RuntimeError("gunicorn or the Celery worker exited at start")
        if time.monotonic() > deadline:
            raise RuntimeError("gunicorn or the Celery worker did not start within 60 s")
        try:
            response = httpx.get(
                f"http://127.0.0.1:{port}/api/v1/redemptions?limit=1",
                headers={"Authorization": f"Bearer {raw_key}"},
                timeout=5,
            )
            if response.status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    name = f"{queue}@{socket.gethostname()}"
    while worker is not None and not celery_app.control.ping(destination=[name], timeout=0.5):
        if worker.poll() is not None:
            raise RuntimeError("the Celery worker exited at start")
        if time.monotonic() > deadline:
            raise RuntimeError("the Celery worker did not answer within 60 s")


# --- the machine --------------------------------------------------------------------------


def cpu_split(web_pid: int, worker_pid: int) -> dict[str, float]:
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


def machine() -> dict:
    """The machine a run was measured on, and the commit."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "commit": commit or "?",
        "commit_dirty": bool(dirty),
    }


@contextmanager
def peak_rss(*pids: int, every: float = 0.02):
    """Samples the resident memory of `pids` while the block runs; yields a dict that
    holds, after it, each pid's RSS before and at its peak (bytes)."""
    import psutil

    processes = {pid: psutil.Process(pid) for pid in pids}
    found = {pid: {"before": p.memory_info().rss, "peak": 0} for pid, p in processes.items()}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for pid, process in processes.items():
                with suppress(psutil.NoSuchProcess):
                    found[pid]["peak"] = max(found[pid]["peak"], process.memory_info().rss)
            time.sleep(every)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield found
    finally:
        done.set()
        sampler.join()


# --- the world ----------------------------------------------------------------------------


def bench_records(
    codes: list[str],
    count: int,
    prefix: str,
    *,
    vouchers_per_batch: int = 0,
    batch: int = 1000,
) -> list[dict]:
    """`count` usage records, record *i* on voucher *i* mod len(codes) (every batch
    touches as many vouchers as it can), or, with `vouchers_per_batch`, each batch of
    `batch` records on that many vouchers only (a data center billing a few customers
    at a time)."""

    def voucher(i: int) -> str:
        if not vouchers_per_batch:
            return codes[i % len(codes)]
        return codes[((i // batch) * vouchers_per_batch + i % vouchers_per_batch) % len(codes)]

    return [
        {
            "record_id": f"{prefix}-{i:08d}",
            "voucher": voucher(i),
            "started_at": f"{USAGE_DAY}T08:00:00+08:00",
            "ended_at": f"{USAGE_DAY}T20:00:00+08:00",
            "resource": "Ascend 910B" if i % 3 else "NVIDIA H20",
            "domestic": bool(i % 3),
            "quantity": "12.000",
            "amount": f"{120 + i % 97}.50",
        }
        for i in range(count)
    ]


def data_center_create(slug: str, name_zh: str, name_en: str, program, other: str = "x"):
    """A data center serving `program` (its operator and cluster named `other`)."""
    from compute.models import DataCenter

    dc = DataCenter.objects.create(
        slug=slug,
        name_zh=name_zh,
        name_en=name_en,
        operator_zh=other,
        operator_en=other,
        hub="guizhou",
        cluster_zh=other,
        cluster_en=other,
    )
    dc.programs.add(program)
    return dc


def bench_world():
    """The benchmarks' city, program, data center (registered there), registration and
    company; vouchers are each benchmark's own. Django must be set up and migrated."""
    from compute.models import Registration
    from portal.models import City
    from vouchers.models import Company, Program

    city = City.objects.create(slug="bench", code="BN", name_zh="基准市", name_en="Bench")
    program = Program.objects.create(
        city=city,
        slug="bench",
        name_zh="基准",
        name_en="Bench",
        status="open",
        budget=Decimal("20000000000.00"),
        award_min=Decimal("1"),
        award_max=Decimal("2000000"),
        rate_domestic=Decimal("0.30"),
        rate_other=Decimal("0.20"),
    )
    dc = data_center_create("bench", "基准", "Bench", program)
    registration = Registration.objects.create(
        city=city, data_center=dc, starts_on=date(2026, 1, 1)
    )
    company = Company.objects.create(legal_name="基准公司", credit_code="91110000000000000X")
    return city, program, dc, registration, company


def more_data_centers(city, program, n: int) -> list:
    """`n` more data centers (`bench-1`…), each registered for the city."""
    from compute.models import Registration

    centers = []
    for k in range(1, n + 1):
        dc = data_center_create(f"bench-{k}", f"基准{k}", f"Bench {k}", program)
        Registration.objects.create(city=city, data_center=dc, starts_on=date(2026, 1, 1))
        centers.append(dc)
    return centers


def bench_vouchers(program, company, centers: list, n: int) -> list[str]:
    """`n` vouchers issued through the ledger, each with an active redemption at every
    data center of `centers`; their codes."""
    from compute.models import Redemption, RedemptionStatus
    from portal.audit import SYSTEM
    from vouchers.ledger import voucher_issue

    vouchers = [
        voucher_issue(
            program=program,
            company=company,
            amount=Decimal("1500000.00"),
            actor=SYSTEM,
            valid_from=VALID_FROM,
        )
        for _ in range(n)
    ]
    Redemption.objects.bulk_create(
        Redemption(voucher=v, data_center=dc, contract_ref="B", status=RedemptionStatus.ACTIVE)
        for dc in centers
        for v in vouchers
    )
    return [v.code for v in vouchers]


def integrity_rules(program, company) -> None:
    """Bands both models' prices fall in, a plan per voucher far above its usage, and
    rules that check the plan and hold what is flagged: every check runs, none fires."""
    from compute.integrity.models import IntegrityRules, PriceBand
    from portal.models import User
    from vouchers.models import Application, ComputePlanRow, Voucher

    for accelerator in ("Ascend 910B", "NVIDIA H20"):
        PriceBand.objects.create(
            program=program,
            accelerator=accelerator,
            reference_price=Decimal("14"),
            tolerance_percent=Decimal("50"),
        )
    IntegrityRules.objects.create(program=program, check_plan=True, hold_charges=True)
    user = User.objects.create_user(email="bench@bench.test", password=None)
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


# --- the ceiling ---------------------------------------------------------------------------


def copy_ceiling(rows: list[dict], data_center_ids: list[int]) -> list[float]:
    """Seconds to COPY `rows` (row *i* of data center *i* mod len(ids)'s share) into a
    plain table with the usage records' unique key, three times into a fresh table
    each: this shared machine's speed drifts, and one figure alone moved the ratio by a
    third between runs. Compare the median."""
    from django.db import connection

    share = -(-len(rows) // len(data_center_ids))
    buffer = io.StringIO()
    for i, r in enumerate(rows):
        buffer.write(
            f"{data_center_ids[i // share]}\t{r['record_id']}\t{r['voucher']}\t"
            f"{r['started_at']}\t{r['ended_at']}\t{r['resource']}\t{r['domestic']}\t"
            f"{r['quantity']}\t{r['amount']}\n"
        )
    data = buffer.getvalue()
    seconds = []
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
            seconds.append(time.perf_counter() - start)
        cursor.execute("DROP TABLE copy_bench")
    return seconds
