"""A usage batch's request id follows it from its POST into its task's log lines
(portal/logging.py): in-process, and across processes to a real worker."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from compute.models import UsageBatch
from portal.logging import RequestIdFilter
from tests.compute.conftest import record
from tests.integration import celery_worker, wait_for

BATCHES = "/api/v1/usage/batches"


@pytest.mark.django_db(transaction=True)
def test_the_task_of_a_batch_logs_the_request_id_of_its_post(
    ledger_world, eager_tasks, settings, caplog
):
    """Eager: the task runs when the batch commits, within its request, as
    `transaction.on_commit` does in production (hence a transactional test)."""
    settings.LOG_REQUESTS = True
    w = ledger_world
    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level(logging.INFO):
        response = w.api.post(
            BATCHES,
            {"records": [record(1, w.voucher.code)]},
            format="json",
            headers={"X-Request-ID": "dc-guian-0001"},
        )
    assert response.status_code == 202
    assert response["X-Request-ID"] == "dc-guian-0001"
    batch_id = response.json()["id"]
    (applied,) = [r for r in caplog.records if r.name == "compute.tasks"]
    assert applied.getMessage().startswith(f"usage batch {batch_id} done")
    assert applied.request_id == "dc-guian-0001"
    assert applied.task_name == "compute.tasks.usage_batch_apply_task"
    (request_line,) = [r for r in caplog.records if r.name == "portal.request"]
    assert request_line.request_id == "dc-guian-0001"
    assert request_line.view == "api:batch_create"


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_logs_json_lines_with_the_request_id_of_the_post(
    ledger_world, live_server, monkeypatch, capfd
):
    """The worker is another process: the id travels in the task message's headers,
    and the worker writes JSON lines (LOG_FORMAT=json) that carry it."""
    monkeypatch.setenv("LOG_FORMAT", "json")
    monkeypatch.setenv("LOG_LEVEL", "INFO")
    w = ledger_world
    headers = {"Authorization": f"Bearer {w.key}", "X-Request-ID": "dc-guian-cross-7"}
    with celery_worker(concurrency=1):
        with httpx.Client(base_url=live_server.url, headers=headers, timeout=30) as client:
            response = client.post(BATCHES, json={"records": [record(2, w.voucher.code)]})
            assert response.status_code == 202
            assert response.headers["X-Request-ID"] == "dc-guian-cross-7"
            batch_id = response.json()["id"]
            wait_for(lambda: UsageBatch.objects.get(pk=batch_id).status == "done", timeout=60)
        wait_for(lambda: _lines_of(capfd, batch_id), timeout=10, interval=0.2)
    lines = _seen[batch_id]
    (applied,) = [e for e in lines if e["logger"] == "compute.tasks"]
    assert applied["request_id"] == "dc-guian-cross-7"
    assert applied["task_name"] == "compute.tasks.usage_batch_apply_task"
    assert applied["level"] == "INFO"
    assert set(applied) >= {"time", "level", "logger", "message", "request_id", "task_id"}


_seen: dict[int, list[dict]] = {}


def _lines_of(capfd, batch_id: int) -> bool:
    """The worker's JSON lines about the batch, read from what it wrote so far."""
    out, err = capfd.readouterr()
    for line in (out + err).splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and f"usage batch {batch_id} " in entry.get("message", ""):
            _seen.setdefault(batch_id, []).append(entry)
    return batch_id in _seen
