"""/healthz (portal.health): 200 when the database, Redis, a worker on every queue and
beat are alive, 503 naming what is not; through the whole middleware chain, cheaply."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest
from django.db import connections
from django.test import Client

from portal import health
from portal.heartbeat import (
    beat_heartbeat,
    beat_key,
    queue_key,
    redis_client,
    worker_heartbeat,
)

QUEUES = ["celery", "ingest", "sync", "notifications", "reports"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


@pytest.fixture
def heartbeats(settings):
    """Heartbeat keys of this test's own in the shared Redis, removed afterwards."""
    settings.HEARTBEAT_KEY_PREFIX = f"test-{uuid.uuid4().hex[:12]}:heartbeat"
    settings.HEALTH_QUEUES = QUEUES
    url = settings.REDIS_URL
    yield settings
    keys = [queue_key(q) for q in QUEUES] + [beat_key()]
    settings.REDIS_URL = url
    redis_client(url).delete(*keys)


def _all_alive() -> None:
    assert worker_heartbeat("worker-a@host", QUEUES[:3])
    assert worker_heartbeat("worker-b@host", QUEUES[3:])
    assert beat_heartbeat()


def _get(client: Client):
    response = client.get("/healthz")
    body = response.json()
    return response.status_code, body["status"], {n: c["status"] for n, c in body["checks"].items()}


def test_healthz_passes_when_everything_is_up(db, heartbeats, client):
    _all_alive()
    status, overall, checks = _get(client)
    assert (status, overall) == (200, "ok")
    assert checks == {
        "database": "ok",
        "redis": "ok",
        **{f"worker:{q}": "ok" for q in QUEUES},
        "beat": "ok",
    }
    body = client.get("/healthz").json()
    assert body["checks"]["worker:ingest"]["host"] == "worker-a@host"
    assert body["checks"]["worker:reports"]["host"] == "worker-b@host"


def test_healthz_fails_when_the_database_is_unreachable(db, heartbeats, client, monkeypatch):
    _all_alive()
    default = connections["default"]
    closed = {**default.settings_dict, "HOST": "127.0.0.1", "PORT": _closed_port()}
    unreachable = type(default)(closed, alias="health-closed")
    monkeypatch.setattr(health, "database_connection", lambda: unreachable)
    status, overall, checks = _get(client)
    assert (status, overall) == (503, "fail")
    assert checks["database"] == "fail"
    assert all(v == "ok" for k, v in checks.items() if k != "database")
    error = client.get("/healthz").json()["checks"]["database"]["error"]
    assert error.startswith("OperationalError")
    unreachable.close()


def test_healthz_fails_when_redis_is_unreachable(db, heartbeats, client):
    _all_alive()
    heartbeats.REDIS_URL = f"redis://127.0.0.1:{_closed_port()}/0"
    status, overall, checks = _get(client)
    assert (status, overall) == (503, "fail")
    assert checks["database"] == "ok"
    assert checks["redis"] == "fail"
    # No heartbeat can be read either.
    assert {checks[f"worker:{q}"] for q in QUEUES} == {"fail"}
    assert checks["beat"] == "fail"


def test_healthz_checks_a_separate_broker_too(db, heartbeats, client):
    _all_alive()
    heartbeats.CELERY_BROKER_URL = f"redis://127.0.0.1:{_closed_port()}/0"
    status, _overall, checks = _get(client)
    assert status == 503
    assert checks["broker"] == "fail"
    assert checks["redis"] == "ok"


def test_healthz_fails_without_a_worker_heartbeat(db, heartbeats, client):
    assert beat_heartbeat()
    status, _overall, checks = _get(client)
    assert status == 503
    assert {checks[f"worker:{q}"] for q in QUEUES} == {"fail"}
    assert checks["beat"] == "ok"


def test_healthz_names_the_queue_nobody_serves(db, heartbeats, client):
    """worker-ingest alive, worker-other (the rest) gone."""
    assert worker_heartbeat("worker-ingest@host", ["ingest"])
    assert beat_heartbeat()
    status, _overall, checks = _get(client)
    assert status == 503
    assert checks["worker:ingest"] == "ok"
    assert [q for q in QUEUES if checks[f"worker:{q}"] == "fail"] == [
        "celery",
        "sync",
        "notifications",
        "reports",
    ]


def test_healthz_fails_without_a_beat_heartbeat(db, heartbeats, client):
    assert worker_heartbeat("worker@host", QUEUES)
    status, _overall, checks = _get(client)
    assert status == 503
    assert checks["beat"] == "fail"
    assert all(checks[f"worker:{q}"] == "ok" for q in QUEUES)


def test_a_heartbeat_older_than_the_maximum_age_fails(db, heartbeats, client):
    _all_alive()
    # What HEARTBEAT_MAX_AGE seconds of silence leave: the keys expired.
    redis_client(heartbeats.REDIS_URL).pexpire(queue_key("sync"), 1)
    redis_client(heartbeats.REDIS_URL).pexpire(beat_key(), 1)
    import time

    time.sleep(0.05)
    _status, _overall, checks = _get(client)
    assert checks["worker:sync"] == "fail"
    assert checks["beat"] == "fail"
    assert checks["worker:ingest"] == "ok"


def test_heartbeats_expire_after_the_maximum_age(db, heartbeats):
    heartbeats.HEARTBEAT_MAX_AGE = 7
    _all_alive()
    ttl = redis_client(heartbeats.REDIS_URL).ttl(queue_key("ingest"))
    assert 0 < ttl <= 7
    assert 0 < redis_client(heartbeats.REDIS_URL).ttl(beat_key()) <= 7


def test_healthz_is_one_select_and_needs_no_session_or_csrf(
    db, heartbeats, django_assert_num_queries
):
    _all_alive()
    client = Client(enforce_csrf_checks=True)
    with django_assert_num_queries(1):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    assert response.headers["Cache-Control"].startswith("max-age=0")
    assert response["X-Request-ID"]
    assert client.head("/healthz").status_code == 200
    assert Client().post("/healthz").status_code == 405


def test_a_city_cannot_take_the_healthz_or_metrics_slug():
    from django.core.exceptions import ValidationError

    from portal.models import validate_city_slug

    for slug in ("healthz", "metrics"):
        with pytest.raises(ValidationError):
            validate_city_slug(slug)


def test_healthz_answers_for_the_checks_asked_for(db, heartbeats, client):
    """The load balancer asks for database and Redis only: a dead worker must not take
    the web processes out of rotation."""
    assert beat_heartbeat()  # no worker at all
    response = client.get("/healthz?check=database,redis")
    assert response.status_code == 200
    assert set(response.json()["checks"]) == {"database", "redis"}
    assert client.get("/healthz?check=worker:ingest").status_code == 503
    assert client.get("/healthz?check=beat").status_code == 200
    unknown = client.get("/healthz?check=worker:nope")
    assert unknown.status_code == 400
    assert "worker:nope" in unknown.json()["error"]


@pytest.mark.integration
def test_a_real_worker_and_beat_make_healthz_pass(
    transactional_db, settings, monkeypatch, tmp_path
):
    """The heartbeats as production writes them: the worker bootstep on the worker's
    timer, the scheduler's tick in beat."""
    import os
    import signal
    import subprocess
    import sys

    from portal.celery import app as celery_app
    from tests.integration import _database_url, celery_worker, wait_for

    prefix = f"test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("CACHE_KEY_PREFIX", prefix)  # the worker's and beat's key space
    settings.HEARTBEAT_KEY_PREFIX = f"{prefix}:heartbeat"
    client = Client()
    with celery_worker(concurrency=1):
        queue = celery_app.conf.task_default_queue
        settings.HEALTH_QUEUES = [queue]
        checks = f"/healthz?check=worker:{queue}"
        wait_for(lambda: client.get(checks).status_code == 200, timeout=30)
        assert client.get("/healthz?check=beat").status_code == 503
        beat = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "portal",
                "beat",
                "-l",
                "WARNING",
                "--schedule",
                str(tmp_path / "celerybeat"),
            ],
            cwd=Path(__file__).resolve().parents[2],
            env={
                **os.environ,
                "DATABASE_URL": _database_url(),
                "CELERY_QUEUE": queue,
                "DATABASE_CONN_MAX_AGE": "0",
            },
            start_new_session=True,
        )
        try:
            wait_for(lambda: client.get("/healthz").status_code == 200, timeout=60)
        finally:
            os.killpg(beat.pid, signal.SIGTERM)
            beat.wait(20)
    body = client.get("/healthz").json()
    assert body["checks"][f"worker:{queue}"]["host"].endswith(socket.gethostname())
    redis_client(settings.REDIS_URL).delete(queue_key(queue), beat_key())
