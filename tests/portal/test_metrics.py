"""/metrics (portal.metrics): who may read it, what it lists, and the sum over processes
when PROMETHEUS_MULTIPROC_DIR is set."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]


def scrape(client: Client | None = None) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics by (name, sorted labels)."""
    response = (client or Client()).get("/metrics")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.content.decode())
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_are_served_to_loopback_only_by_default(db):
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="::1").get("/metrics").status_code == 200
    refused = Client(REMOTE_ADDR="203.0.113.9").get("/metrics")
    assert refused.status_code == 403
    assert b"suanli_" not in refused.content


def test_allowed_networks_are_configurable_and_forwarded_for_is_not_trusted(db, settings):
    settings.METRICS_ALLOWED_IPS = ["10.20.0.0/16", "192.0.2.7"]
    assert Client(REMOTE_ADDR="10.20.3.4").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="192.0.2.7").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 403
    spoofed = Client(REMOTE_ADDR="198.51.100.1", HTTP_X_FORWARDED_FOR="10.20.3.4")
    assert spoofed.get("/metrics").status_code == 403


def test_metrics_list_every_family_the_runbooks_alert_on(db):
    response = Client().get("/metrics")
    names = {f.name for f in text_string_to_metric_families(response.content.decode())}
    assert {
        "suanli_http_request_duration_seconds",
        "suanli_celery_queue_length",
        "suanli_usage_records",
        "suanli_usage_batches",
        "suanli_usage_batch_apply_seconds",
        "suanli_feed_sync_runs",
        "suanli_feed_healthy",
        "suanli_usage_batches_pending",
        "suanli_usage_batch_oldest_pending_seconds",
        "suanli_discrepancies_open",
        "suanli_celery_tasks",
    } <= names


def test_request_latency_is_observed_by_view_name(db):
    before = scrape()
    client = Client()
    client.get("/healthz")
    client.get("/healthz")
    client.get("/no-such-page/at/all/")
    after = scrape()
    count = "suanli_http_request_duration_seconds_count"
    healthz = [k for k in after if k[0] == count and ("view", "healthz") in k[1]]
    assert healthz
    assert sum(after[k] - before.get(k, 0) for k in healthz) == 2
    unresolved = [k for k in after if k[0] == count and ("view", "unresolved") in k[1]]
    assert sum(after[k] - before.get(k, 0) for k in unresolved) >= 1


def test_queue_length_is_read_from_the_broker(db, settings):
    from portal.celery import app
    from portal.heartbeat import redis_client

    queue = f"test-depth-{uuid.uuid4().hex[:8]}"
    settings.WORKER_QUEUES = ["ingest", queue]
    client = redis_client(app.conf.broker_url)
    client.lpush(queue, "a", "b", "c")
    client.lpush(queue + "\x06\x163", "d")  # kombu's list for priority 3
    try:
        samples = scrape()
    finally:
        client.delete(queue, queue + "\x06\x163")
    assert value(samples, "suanli_celery_queue_length", queue=queue) == 4
    assert ("suanli_celery_queue_length", (("queue", "ingest"),)) in samples


def test_a_broken_collector_does_not_hide_the_others(db, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    samples = scrape()
    assert not any(k[0] == "suanli_celery_queue_length" for k in samples)
    assert any(k[0] == "suanli_http_request_duration_seconds_count" for k in samples)


MULTIPROCESS_SCRIPT = """
import os, sys
import django
django.setup()
from django.test import Client
from portal.metrics import HTTP_LATENCY
# As if another gunicorn worker (pid 999999) had answered 3 requests of a view:
HTTP_LATENCY.labels("from-another-process", "GET", "200").observe(0.01)
sys.stdout.write(Client().get("/metrics").content.decode())
"""


def test_with_a_multiprocess_dir_the_scrape_sums_every_process(tmp_path):
    """PROMETHEUS_MULTIPROC_DIR (gunicorn, Celery's pool): each process writes its own
    file, /metrics adds them up. Two processes here, one after the other."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")},
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "portal.settings",
    }

    def run() -> str:
        result = subprocess.run(
            [sys.executable, "-c", MULTIPROCESS_SCRIPT],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    run()
    text = run()
    assert len(list(tmp_path.glob("histogram_*.db"))) == 2  # a file per process
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    key = (
        "suanli_http_request_duration_seconds_count",
        (("method", "GET"), ("status", "200"), ("view", "from-another-process")),
    )
    assert samples[key] == 2


def test_a_worker_serves_its_metrics_on_its_own_port():
    import socket

    import httpx

    from portal.metrics import worker_metrics_serve

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = worker_metrics_serve(port, address="127.0.0.1")
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        server.shutdown()
        server.server_close()
    assert "suanli_usage_batch_apply_seconds" in text


@pytest.mark.parametrize("pid", [12345])
def test_a_dead_process_is_forgotten_only_in_multiprocess_mode(pid, monkeypatch, tmp_path):
    from portal import metrics

    called = []
    monkeypatch.setattr(metrics.multiprocess, "mark_process_dead", called.append)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    metrics.process_dead(pid)
    assert called == []
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    metrics.process_dead(pid)
    assert called == [pid]
