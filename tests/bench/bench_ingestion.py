"""Usage ingestion end to end, as `make bench` (tests/bench/bench.py) measures it.

A `Stack` is gunicorn as deployed and a Celery worker on the benchmark's queue; `ingest`
pushes records from several data centers at once through it — each data center its
share, with its own key, one batch after another — and waits until every batch is
applied. The clock runs from the first POST until the last batch is done; the bodies are
encoded before it starts (that is the data centers' work, on their own machines).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench.harness import (
    bench_records,
    cpu_split,
    free_port,
    server_env,
    start_celery,
    start_gunicorn,
    stop,
    wait_ready,
)


@dataclass
class Stack:
    """gunicorn (portal.gunicorn_conf) and a Celery worker of `workers` processes."""

    queue: str
    raw_key: str  # any data center's, to see that the server answers
    workers: int
    logs: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="suanli-bench-")))
    port: int = 0
    web: object = None
    worker: object = None

    def start(self) -> None:
        from portal.celery import app

        self.env = server_env(self.queue)
        self.port = free_port()
        self.web = start_gunicorn(self.env, self.port, (self.logs / "gunicorn.log").open("ab"))
        self._start_worker()
        wait_ready(self.port, self.raw_key, self.web, self.worker, self.queue, app)

    def _start_worker(self) -> None:
        log = (self.logs / "celery.log").open("ab")
        self.worker = start_celery(self.env, self.queue, self.workers, log)

    def restart_worker(self, workers: int) -> None:
        from portal.celery import app

        stop(self.worker)
        self.workers = workers
        self._start_worker()
        wait_ready(self.port, self.raw_key, None, self.worker, self.queue, app)

    def stop(self) -> None:
        for process in (self.web, self.worker):
            if process is not None:
                stop(process)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def ingest(
    stack: Stack,
    keys: list[str],
    codes: list[str],
    *,
    label: str,
    records: int,
    batch: int,
    vouchers_per_batch: int = 0,
) -> tuple[dict, list[dict]]:
    """Push `records` records in batches of `batch` from len(keys) data centers at once
    (data center *k* the *k*-th contiguous share), wait until all are applied. Returns
    the figures and the rows pushed (for the COPY ceiling)."""
    import httpx

    from compute.models import UsageBatch

    prefix = f"{label}-{time.time_ns()}"
    rows = bench_records(codes, records, prefix, vouchers_per_batch=vouchers_per_batch, batch=batch)
    share = -(-records // len(keys))
    bodies = [
        [
            json.dumps({"records": rows[i : i + batch]}).encode()
            for i in range(k * share, min(records, (k + 1) * share), batch)
        ]
        for k in range(len(keys))
    ]

    def push(k: int) -> list[int]:
        headers = {"Authorization": f"Bearer {keys[k]}", "Content-Type": "application/json"}
        ids = []
        with httpx.Client(base_url=stack.base, headers=headers, timeout=300) as client:
            for body in bodies[k]:
                response = client.post("/api/v1/usage/batches", content=body)
                response.raise_for_status()
                ids.append(response.json()["id"])
        return ids

    cpu_before = cpu_split(stack.web.pid, stack.worker.pid)
    start = time.perf_counter()
    with ThreadPoolExecutor(len(keys)) as pool:
        ids = [i for share_ids in pool.map(push, range(len(keys))) for i in share_ids]
    pushed = time.perf_counter() - start
    pending = UsageBatch.objects.filter(pk__in=ids).exclude(status="done")
    while pending.exists():
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    cpu_after = cpu_split(stack.web.pid, stack.worker.pid)
    accepted = sum(UsageBatch.objects.filter(pk__in=ids).values_list("accepted", flat=True))
    cpu = {k: round(cpu_after[k] - cpu_before[k], 2) for k in cpu_after if k != "other"}
    figures = {
        "label": label,
        "records": records,
        "accepted": accepted,
        "batch": batch,
        "batches": len(ids),
        "data_centers": len(keys),
        "vouchers_per_batch": vouchers_per_batch or min(batch, len(codes)),
        "worker_processes": stack.workers,
        "seconds": round(elapsed, 3),
        "seconds_all_posts_answered": round(pushed, 3),
        "records_per_s": round(records / elapsed, 1),
        "cpu_seconds": cpu,
        "worker_cpu_s_per_100k": round(cpu["worker"] * 100_000 / records, 3),
        "load_average_after": round(os.getloadavg()[0], 2),
    }
    print(
        f"  {label}: {records:,} records ({accepted:,} accepted), batches of {batch:,}, "
        f"{stack.workers} worker processes: {elapsed:.2f} s = {records / elapsed:,.0f} "
        "records/s; CPU s " + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items()),
        flush=True,
    )
    return figures, rows
