"""The processes of a load run (gunicorn, Celery workers) and its report."""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from tests.bench.harness import cpu_split, free_port, git, spawn, start_celery, stop, wait_ready
from tests.bench.load.accounting import check_accounting
from tests.bench.load.client import Client, Stats, percentile
from tests.bench.load.world import ENDPOINTS, LoadConfig, seed

# --- processes ------------------------------------------------------------------------------


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class Report:
    config: LoadConfig
    seconds_push: float = 0
    seconds_total: float = 0  # push phase start until the last batch was done
    seconds_seed: float = 0
    accepted: int = 0
    records_sent: int = 0
    batches: int = 0
    sent_kinds: Counter = field(default_factory=Counter)
    stats: Stats = field(default_factory=Stats)
    problems: list[str] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    load: tuple[float, float] = (0.0, 0.0)  # the machine's 1-minute load average
    logs: dict[str, str] = field(default_factory=dict)
    log_dir: str = ""

    @property
    def server_errors(self) -> int:
        return self.stats.server_errors

    @property
    def ok(self) -> bool:
        s = self.stats
        return not (self.problems or s.server_errors or s.unexpected or s.transport)

    def render(self) -> str:
        c, s = self.config, self.stats
        requests = sum(s.statuses.values())
        commit = git("rev-parse", "--short", "HEAD") or "?"
        lines = [
            f"load test {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit}, "
            f"{platform.node()} ({os.cpu_count()} cores)",
            f"{c.clients} clients of {c.data_centers} data centers, {c.vouchers} vouchers; "
            f"gunicorn {c.web_workers} workers × {c.web_threads} threads, "
            f"{c.celery_workers} Celery worker processes (seeded in {self.seconds_seed:.1f} s)",
            f"push {self.seconds_push:.1f} s, every batch done after {self.seconds_total:.1f} s;"
            f" {requests:,} requests ({requests / max(self.seconds_total, 1e-9):,.0f}/s)",
            f"{self.batches:,} batches, {self.records_sent:,} records sent "
            f"({self.records_sent / max(self.seconds_total, 1e-9):,.0f}/s): "
            + ", ".join(f"{k} {n:,}" for k, n in self.sent_kinds.most_common()),
            f"accepted records: {self.accepted:,} = "
            f"{self.accepted / max(self.seconds_total, 1e-9):,.0f} records/s "
            f"(until every batch was done)",
            "",
            f"{'latency, ms':<34}{'requests':>9}{'p50':>9}{'p99':>9}{'max':>9}",
        ]
        for endpoint in ENDPOINTS:
            values = s.latencies.get(endpoint)
            if values:
                lines.append(
                    f"{endpoint:<34}{len(values):>9,}{percentile(values, 50) * 1000:>9.1f}"
                    f"{percentile(values, 99) * 1000:>9.1f}{max(values) * 1000:>9.1f}"
                )
        by_status = Counter()
        for (_e, status), n in s.statuses.items():
            by_status[status] += n
        lines += [
            "",
            "HTTP statuses: " + ", ".join(f"{k} ×{n:,}" for k, n in sorted(by_status.items())),
            "errors (4xx/5xx) by endpoint: "
            + (
                ", ".join(
                    f"{e} {st} ×{n:,}"
                    + (f" ({s.unexpected[e, st]} unexpected)" if s.unexpected[e, st] else "")
                    for (e, st), n in sorted(s.statuses.items())
                    if st >= 400
                )
                or "none"
            ),
            f"5xx: {s.server_errors}; unexpected statuses: {sum(s.unexpected.values())}; "
            f"transport errors: {sum(s.transport.values())}",
        ]
        if self.cpu:
            lines.append(
                "CPU seconds (postgres: all of the server's databases): "
                + ", ".join(f"{k} {v:.1f}" for k, v in self.cpu.items())
                + f"; load average {self.load[0]:.1f} before, {self.load[1]:.1f} after"
            )
        lines.append("")
        for example in s.examples:
            lines.append(f"  unexpected: {example}")
        for (endpoint, name), n in s.transport.items():
            lines.append(f"  transport error: {endpoint} {name} ×{n}")
        if self.problems:
            lines.append(f"ACCOUNTING DOES NOT BALANCE: {len(self.problems)} problems")
            lines += [f"  - {p}" for p in self.problems[:50]]
        else:
            lines.append(
                "accounting balanced: every record accounted for once, per-voucher tallies "
                "= database, balances = face − covered, none below zero, verify_ledger clean"
            )
        if not self.ok:
            for name, text in self.logs.items():
                if text:
                    lines += ["", f"--- last lines of the {name} log ---", text]
            lines.append(f"(the logs in full: {self.log_dir})")
        lines.append("RESULT: " + ("OK" if self.ok else "FAILED"))
        return "\n".join(lines)


def run_load(config: LoadConfig, *, database_url: str, redis_url: str) -> Report:
    """Seed the database Django is connected to (which `database_url` must name, for the
    server and the worker), run the load, check the accounting. Django must be set up."""
    from django.conf import settings

    from portal.celery import app as celery_app

    # Django's logging configuration would print a line per request of the clients.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    report = Report(config)
    start = time.perf_counter()
    seeded = seed(config)
    report.seconds_seed = time.perf_counter() - start

    run = uuid.uuid4().hex[:6]
    queue = f"load-{run}"
    logs = Path(tempfile.mkdtemp(prefix="suanli-load-"))
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CELERY_QUEUE": queue,
        "CACHE_KEY_PREFIX": queue,
        "API_RATE_LIMIT": "10000000/min",
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "load-test-only-" + uuid.uuid4().hex,
        # The key this process seeded and verifies with: the ledger's keyed chain runs
        # through both (an entry sealed with a key the verifier lacks is a break).
        "AUDIT_CHAIN_KEY": settings.AUDIT_CHAIN_KEY,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "LOG_LEVEL": "WARNING",
    }
    port = free_port()
    web_log, worker_log = logs / "gunicorn.log", logs / "celery.log"
    web_command = [sys.executable, "-m", "gunicorn", "portal.wsgi", "--bind", f"127.0.0.1:{port}"]
    web_command += ["--workers", str(config.web_workers), "--threads", str(config.web_threads)]
    web_command += ["--worker-class", "gthread", "--timeout", "120", "--graceful-timeout", "20"]
    web_command += ["--log-level", "warning"]
    with web_log.open("wb") as web_out, worker_log.open("wb") as worker_out:
        # Sessions of their own: each is stopped with its children (gunicorn's workers,
        # Celery's pool), and only those.
        web = spawn(web_command, env, web_out)
        worker = start_celery(env, queue, config.celery_workers, worker_out)
    try:
        try:
            wait_ready(port, seeded.data_centers[0][2], web, worker, queue, celery_app)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc} (logs in {logs})") from exc
        clients = [
            Client(
                i,
                seeded.data_centers[i % len(seeded.data_centers)],
                seeded,
                config,
                report.stats,
                f"http://127.0.0.1:{port}",
                run,
            )
            for i in range(config.clients)
        ]
        cpu_before = cpu_split(web.pid, worker.pid)
        clients_cpu = time.process_time()
        load_before = os.getloadavg()[0]
        started = time.perf_counter()

        async def all_clients() -> None:
            now = time.monotonic()
            push_until = now + config.seconds
            drain_until = push_until + config.drain_timeout
            await asyncio.gather(*(c.run(push_until, drain_until) for c in clients))

        asyncio.run(all_clients())
        report.seconds_total = time.perf_counter() - started
        report.seconds_push = min(config.seconds, report.seconds_total)
        clients_cpu = time.process_time() - clients_cpu
        cpu_after = cpu_split(web.pid, worker.pid)
        # Not "other": on a shared machine, processes that ended during the run take
        # their time with them (it came out negative).
        report.cpu = {k: cpu_after[k] - cpu_before[k] for k in ("web", "worker", "postgres")}
        report.cpu["clients"] = clients_cpu
        report.cpu["idle"] = cpu_after["idle"] - cpu_before["idle"]
        report.load = (load_before, os.getloadavg()[0])
    finally:
        stop(web)
        stop(worker)
    report.logs = {"gunicorn": _tail(web_log), "celery": _tail(worker_log)}
    report.log_dir = str(logs)
    for c in clients:
        report.accepted += c.accepted
        report.batches += len(c.posted)
        report.sent_kinds.update(c.sent_kinds)
        report.problems += c.problems
    report.records_sent = sum(report.sent_kinds.values())
    report.problems += check_accounting(clients, seeded)
    if report.ok:  # a failed run keeps its logs, and says where
        shutil.rmtree(logs, ignore_errors=True)
    return report
