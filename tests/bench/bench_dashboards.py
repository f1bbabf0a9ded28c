"""Benchmark of the oversight pages and the exports on a city at scale (issue #12, Speed).

Loads a `seed_scale` city into a database of its own (`<name>_dashbench`, recreated),
starts the real WSGI server (gunicorn, one gthread worker, as in production) and prints,
for every page of `PAGES` that exists in the URL configuration when it runs (the
dashboards, their JSON endpoints, the queue, the audit page, beside a trivial page of
the same server in the same run): the median and p95 time of `REQUESTS` requests over
one kept-alive connection and the page's query count (measured in-process with Django's
test client on the same database: the server runs without DEBUG). Then it downloads a
the city's usage export (one row per usage record: 2,000,000 at the default scale) as
CSV and as XLSX and prints rows/s and the growth of the server worker's resident memory
(sampled every 20 ms) over its size before.
It prints figures; it asserts nothing.

    make bench-dashboards                       # 100k applications, 20k vouchers, 2M records
    BENCH_SCALE="10000 2000 200000" make bench-dashboards   # smaller: applications vouchers records
    BENCH_REQUESTS=50 make bench-dashboards
    BENCH_REUSE=1 BENCH_EXPORTS=0 make bench-dashboards   # the city of the last run, pages only
    BENCH_REUSE=1 BENCH_EXPORTS=csv make bench-dashboards # pages and the CSV export

The pages are listed here, not discovered: a page missing from the URL configuration
is reported as such and skipped, so the list can name pages before they land.
"""

from __future__ import annotations

import http.client
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script
    sys.path.insert(0, str(ROOT))

from tests.bench.harness import bench_url, free_port, setup_database  # noqa: E402

SCALE = [int(x) for x in os.environ.get("BENCH_SCALE", "100000 20000 2000000").split()]
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "20"))
CITY = "scale"
# Keep the database and city of the last run (migrated, rollups rebuilt, analyzed).
REUSE = os.environ.get("BENCH_REUSE") == "1"
# "1": CSV and XLSX, "0": none, "csv" or "xlsx": that one (XLSX of a million rows takes
# minutes).
_EXPORTS = os.environ.get("BENCH_EXPORTS", "1")
EXPORT_FORMATS = {"1": ("csv", "xlsx"), "0": ()}.get(_EXPORTS, (_EXPORTS,))

# (label, URL name, kwargs, who asks). Kwargs may name `city`, `program`, `dc`, `code`
# (filled from the seeded city). Who: manager, auditor, reviewer, founder, operator,
# admin (a superuser).
PAGES: list[tuple[str, str, dict, str]] = [
    ("trivial: profile page", "portal:profile", {}, "manager"),
    ("staff home (work lists)", "portal:staff_home", {"city_slug": "city"}, "manager"),
    ("application queue", "vouchers:queue", {"city_slug": "city"}, "manager"),
    ("audit trail", "portal:audit_log", {"city_slug": "city"}, "auditor"),
    ("vouchers list", "compute:staff_vouchers", {"city_slug": "city"}, "manager"),
    ("settlements list", "compute:staff_settlements", {"city_slug": "city"}, "manager"),
    (
        "program dashboard",
        "compute:program_dashboard",
        {"city_slug": "city", "slug": "program"},
        "manager",
    ),
    ("program dashboards (index)", "compute:program_dashboards", {"city_slug": "city"}, "manager"),
    (
        "program dashboard JSON",
        "compute:program_dashboard_json",
        {"city_slug": "city", "slug": "program"},
        "manager",
    ),
    ("company home", "vouchers:company_home", {}, "founder"),
    ("company dashboard", "compute:my_dashboard", {}, "founder"),
    (
        "company voucher usage JSON",
        "compute:my_voucher_usage_json",
        {"code": "code"},
        "founder",
    ),
    ("data-center console", "compute:console", {"slug": "dc"}, "operator"),
    ("data-center dashboard", "compute:console_dashboard", {"slug": "dc"}, "operator"),
    ("data-center dashboard JSON", "compute:console_dashboard_json", {"slug": "dc"}, "operator"),
    ("platform overview", "compute:platform_overview", {}, "admin"),
    ("platform overview JSON", "compute:platform_overview_json", {}, "admin"),
    (
        "public results",
        "vouchers:program_results",
        {"city_slug": "city", "slug": "program"},
        "manager",
    ),
]


@dataclass
class Timing:
    label: str
    path: str
    status: int
    median_ms: float
    p95_ms: float
    queries: int | None


def _signed_in(user):
    """Django's test client signed in as `user`, past the second factor the privileged
    must use (portal.twofactor): an authenticator on the account, and this session the
    one that enrolled it. The session is in the database the server reads."""
    from allauth.mfa.models import Authenticator
    from django.test import Client

    from portal.twofactor import ENROLLED_HERE

    Authenticator.objects.get_or_create(
        user=user, type=Authenticator.Type.TOTP, defaults={"data": {"secret": "bench"}}
    )
    client = Client()
    client.force_login(user)
    session = client.session
    session[ENROLLED_HERE] = True
    session.save()
    return client


def _sessions(result) -> dict[str, str]:
    """A signed-in session cookie per principal (Django's test client writes the
    session to the database the server reads)."""
    from django.conf import settings

    from compute.scale import founder_email, operator_email, staff_email
    from portal.models import User

    emails = {
        "manager": staff_email("manager", result.city),
        "auditor": staff_email("auditor", result.city),
        "reviewer": staff_email("reviewer", result.city),
        "founder": founder_email(result.city),
        "operator": operator_email(result.city),
    }
    admin, _ = User.objects.get_or_create(
        email="admin@dashbench.test", defaults={"is_staff": True, "is_superuser": True}
    )
    cookies = {}
    users = {who: User.objects.get(email=email) for who, email in emails.items()}
    users["admin"] = admin
    for who, user in users.items():
        cookies[who] = _signed_in(user).cookies[settings.SESSION_COOKIE_NAME].value
    return cookies


def _fill(kwargs: dict, values: dict) -> dict:
    return {key: values[name] for key, name in kwargs.items()}


def _query_count(path: str, user_email: str) -> tuple[int, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from portal.models import User

    client = _signed_in(User.objects.get(email=user_email))
    client.get(path)  # warm: caches, translations
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    if getattr(response, "streaming", False):
        b"".join(response.streaming_content)
    return response.status_code, len(queries)


def _time(port: int, path: str, cookie: str, n: int) -> tuple[int, list[float]]:
    from django.conf import settings

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}", "Host": "127.0.0.1"}
    times, status = [], 0
    for i in range(n + 1):
        start = time.perf_counter()
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        elapsed = (time.perf_counter() - start) * 1000
        status = response.status
        if i:  # the first request warms the worker
            times.append(elapsed)
    conn.close()
    return status, times


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _worker_pid(master: int) -> int:
    import psutil

    for _ in range(100):
        children = psutil.Process(master).children()
        if children:
            return children[0].pid
        time.sleep(0.1)
    raise RuntimeError("gunicorn has no worker")


def _export(port: int, path: str, cookie: str, worker: int) -> tuple[int, float, float, int]:
    """(bytes, seconds, peak RSS growth in MB, status) of one download."""
    import psutil
    from django.conf import settings

    process = psutil.Process(worker)
    before = process.memory_info().rss
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            try:
                peak[0] = max(peak[0], process.memory_info().rss)
            except psutil.NoSuchProcess:
                return
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1800)
    start = time.perf_counter()
    conn.request("GET", path, headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}"})
    response = conn.getresponse()
    size = 0
    while block := response.read(1 << 20):
        size += len(block)
    elapsed = time.perf_counter() - start
    done.set()
    sampler.join()
    conn.close()
    return size, elapsed, (peak[0] - before) / 2**20, response.status


def main() -> None:
    url = bench_url("_dashbench")
    if not REUSE:
        setup_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    # The server and this process (which signs the sessions in) share the keys.
    os.environ["DJANGO_SECRET_KEY"] = "bench-only"
    os.environ.setdefault("AUDIT_CHAIN_KEY", "bench-only")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.urls import NoReverseMatch, reverse

    call_command("migrate", verbosity=0)
    from compute.models import UsageRecord
    from compute.rollups import rollups_rebuild
    from compute.scale import LOADED_TABLES, SCALE_PROGRAM, ScaleResult, seed_scale
    from portal.models import City
    from vouchers.models import Application, Voucher

    t0 = time.perf_counter()
    city = City.objects.filter(slug=CITY).first() if REUSE else None
    if city is not None:
        applications = Application.objects.filter(city=city).count()
        vouchers = Voucher.objects.filter(city=city).count()
        records = UsageRecord.objects.filter(voucher__city=city).count()
        result = ScaleResult(city, applications, vouchers, records, 0)
        rollups_rebuild()
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {', '.join(LOADED_TABLES)}")
        print(f"reused the last run's city: rollups rebuilt in {time.perf_counter() - t0:.0f} s")
    else:
        applications, vouchers, records = SCALE
        result = seed_scale(
            city_slug=CITY,
            applications=applications,
            vouchers=vouchers,
            records=records,
            progress=lambda m: print(f"  [{time.perf_counter() - t0:6.1f} s] {m}", flush=True),
        )
        seeded = time.perf_counter() - t0
        print(
            f"seed_scale: {applications:,} applications, {vouchers:,} vouchers, "
            f"{records:,} usage records in {seeded:.0f} s"
        )
    call_command("verify_ledger", verbosity=0)
    call_command("verify_audit", verbosity=0)
    print("verify_ledger and verify_audit: passed")
    cookies = _sessions(result)
    founder_voucher = Voucher.objects.filter(company__members__email__startswith="founder@")
    values = {
        "city": CITY,
        "program": SCALE_PROGRAM,
        "dc": result.city.registrations.order_by("pk").first().data_center.slug,
        "code": founder_voucher.values_list("code", flat=True).first(),
    }
    from compute.scale import founder_email, operator_email, staff_email

    emails = {
        "manager": staff_email("manager", result.city),
        "auditor": staff_email("auditor", result.city),
        "reviewer": staff_email("reviewer", result.city),
        "founder": founder_email(result.city),
        "operator": operator_email(result.city),
        "admin": "admin@dashbench.test",
    }

    env = {
        **os.environ,
        "DJANGO_DEBUG": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "LOG_LEVEL": "WARNING",
    }
    # Without DEBUG the pages need the static files' manifest (var/static).
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "portal.wsgi", "--bind", f"127.0.0.1:{port}"]
    command += ["--workers", "1", "--threads", "2", "--worker-class", "gthread"]
    command += ["--timeout", "1800", "--log-level", "warning"]
    # A session of its own: stopped with its worker, and only those.
    web = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    timings: list[Timing] = []
    missing: list[str] = []
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        worker = _worker_pid(web.pid)
        for label, name, kwargs, who in PAGES:
            try:
                path = reverse(name, kwargs=_fill(kwargs, values))
            except NoReverseMatch:
                missing.append(f"{label} ({name})")
                continue
            status, times = _time(port, path, cookies[who], REQUESTS)
            _status, queries = _query_count(path, emails[who])
            timings.append(
                Timing(label, path, status, statistics.median(times), _p95(times), queries)
            )
            print(f"  {label}: {statistics.median(times):.1f} ms median", flush=True)
        exports = []
        for fmt in EXPORT_FORMATS:
            path = reverse(f"compute:usage_export_{fmt}", args=[CITY])
            size, seconds, growth, status = _export(port, path, cookies["manager"], worker)
            exports.append((fmt, records, size, seconds, growth, status))
            print(f"  export {fmt}: {records / seconds:,.0f} rows/s", flush=True)
    finally:
        web.terminate()
        try:
            web.wait(timeout=20)
        except subprocess.TimeoutExpired:
            web.kill()
    trivial = next((t for t in timings if t.label.startswith("trivial")), None)
    print()
    print(
        f"City `{CITY}`: {applications:,} applications, {vouchers:,} vouchers, "
        f"{records:,} usage records; {REQUESTS} requests per page, gunicorn 1 worker × 2 "
        "threads, DJANGO_DEBUG=0"
    )
    print()
    print("| page | status | median ms | p95 ms | × trivial | queries |")
    print("|---|---|---|---|---|---|")
    for t in timings:
        ratio = f"{t.median_ms / trivial.median_ms:.1f}" if trivial else "—"
        print(
            f"| {t.label} | {t.status} | {t.median_ms:.1f} | {t.p95_ms:.1f} | {ratio} | "
            f"{t.queries} |"
        )
    if not exports:
        return
    print()
    print("| export | rows | MB | seconds | rows/s | peak RSS growth MB | status |")
    print("|---|---|---|---|---|---|---|")
    for fmt, rows, size, seconds, growth, status in exports:
        print(
            f"| usage {fmt.upper()} | {rows:,} | {size / 2**20:.0f} | {seconds:.1f} | "
            f"{rows / seconds:,.0f} | {growth:.0f} | {status} |"
        )
    if missing:
        print()
        print("Not in the URL configuration (skipped): " + "; ".join(missing))


if __name__ == "__main__":
    main()
