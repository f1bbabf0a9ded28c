"""What deploying needs of the settings (read in fresh interpreters, so this run's
settings stay put) and of the container files: the compose file's services run the
commands and queues the code expects, and the image is what the docs say."""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml
from django.test import Client

from portal.celery import DEFAULT_QUEUE
from tests.portal.test_health import _all_alive, heartbeats  # noqa: F401 - a fixture

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "k7#Qm2v9-production-secret-that-is-long-and-random-0f3a9c1e8b7d",
    "DJANGO_ALLOWED_HOSTS": "suanli.example.gov.cn",
    "AUDIT_CHAIN_KEY": "Zq4-production-audit-chain-key-that-is-long-and-random-91c0e",
}
NAMES = (
    "DATABASES",
    "DATABASE_ROUTERS",
    "LOG_FORMAT",
    "LOG_REQUESTS",
    "SECURE_REDIRECT_EXEMPT",
    "WORKER_QUEUES",
    "HEALTH_QUEUES",
    "CELERY_TASK_DEFAULT_QUEUE",
    "METRICS_ALLOWED_IPS",
)


def settings_with(**env: str) -> dict:
    """The settings a process started with `env` would have (JSON-able ones)."""
    return json.loads(_settings_json(tuple(sorted(env.items()))))


@functools.cache
def _settings_json(env_items: tuple) -> str:
    env = dict(env_items)
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_", "LOG_", "CELERY_"))
    }
    base["DATABASE_URL"] = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1/x")
    code = (
        "import json; from portal import settings as s; "
        f"print(json.dumps({{n: getattr(s, n, None) for n in {NAMES!r}}}, default=str))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def production_settings(**env: str) -> dict:
    return settings_with(**PRODUCTION, **env)


def test_database_pool_switch_turns_on_psycopgs_pool():
    off = settings_with()["DATABASES"]["default"]
    assert "pool" not in off["OPTIONS"]
    assert off["OPTIONS"]["connect_timeout"] == 5
    on = settings_with(DATABASE_POOL="1", DATABASE_POOL_MAX_SIZE="20")["DATABASES"]["default"]
    assert on["OPTIONS"]["pool"] == {"min_size": 2, "max_size": 20, "timeout": 10}
    assert on["CONN_MAX_AGE"] == 0  # Django refuses persistent connections with a pool


def test_the_pool_really_serves_queries(db):
    from tests.integration import _database_url

    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env["DATABASE_URL"] = _database_url()  # the test database: it exists
    code = (
        "import django; django.setup(); from django.db import connection;"
        "c = connection.cursor(); c.execute('SELECT 1'); print(c.fetchone()[0], "
        "type(connection.pool).__name__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "DATABASE_POOL": "1", "DJANGO_SETTINGS_MODULE": "portal.settings"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "ConnectionPool"]


def test_pgbouncer_switch_disables_server_side_cursors():
    assert not settings_with()["DATABASES"]["default"]["DISABLE_SERVER_SIDE_CURSORS"]
    bouncer = settings_with(DATABASE_PGBOUNCER="1")["DATABASES"]["default"]
    assert bouncer["DISABLE_SERVER_SIDE_CURSORS"] is True


def test_replica_url_adds_the_replica_and_its_router():
    plain = settings_with()
    assert "replica" not in plain["DATABASES"]
    assert plain["DATABASE_ROUTERS"] is None
    replica = settings_with(DATABASE_REPLICA_URL="postgresql://reader@replica.internal:5432/suanli")
    assert replica["DATABASES"]["replica"]["HOST"] == "replica.internal"
    assert replica["DATABASES"]["replica"]["TEST"] == {"MIRROR": "default"}
    assert replica["DATABASE_ROUTERS"] == ["portal.dbrouter.ReplicaRouter"]


def test_production_logs_json_and_development_plain():
    assert settings_with()["LOG_FORMAT"] == "plain"
    production = production_settings()
    assert (production["LOG_FORMAT"], production["LOG_REQUESTS"]) == ("json", True)
    assert production_settings(LOG_FORMAT="plain")["LOG_FORMAT"] == "plain"
    assert settings_with(LOG_FORMAT="json")["LOG_FORMAT"] == "json"


def test_production_exempts_healthz_and_metrics_from_the_https_redirect():
    exempt = production_settings()["SECURE_REDIRECT_EXEMPT"]
    assert any(re.search(p, "healthz") for p in exempt)
    assert any(re.search(p, "metrics") for p in exempt)
    assert not any(re.search(p, "accounts/login/") for p in exempt)


def test_one_queue_for_everything_when_celery_queue_is_set():
    assert settings_with()["WORKER_QUEUES"] == [
        "celery",
        "ingest",
        "sync",
        "notifications",
        "reports",
    ]
    single = settings_with(CELERY_QUEUE="test-abc")
    assert single["CELERY_TASK_DEFAULT_QUEUE"] == "test-abc"
    assert single["WORKER_QUEUES"] == single["HEALTH_QUEUES"] == ["test-abc"]


def test_healthz_is_exempt_from_the_https_redirect(db, heartbeats, settings):  # noqa: F811 - fixture
    """Production redirects HTTP to HTTPS; a load balancer's check asks over HTTP."""
    exempt = production_settings()["SECURE_REDIRECT_EXEMPT"]
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_REDIRECT_EXEMPT = exempt
    _all_alive()
    client = Client()  # a new handler reads the security settings anew
    assert client.get("/healthz").status_code == 200
    assert client.get("/").status_code == 301


# The container files ---------------------------------------------------------------

QUEUES = ["celery", "ingest", "sync", "notifications", "reports"]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def _command(service: dict) -> list[str]:
    command = service.get("command", [])
    return command.split() if isinstance(command, str) else list(command)


def _queues_of(command: list[str]) -> list[str]:
    assert "-Q" in command, command
    return command[command.index("-Q") + 1].split(",")


def test_compose_has_the_services_of_the_topology():
    services = _compose()["services"]
    assert set(services) == {"web", "worker-ingest", "worker-other", "beat", "postgres", "redis"}
    for name in ("web", "worker-ingest", "worker-other", "beat", "postgres", "redis"):
        assert "healthcheck" in services[name], name


def test_compose_workers_consume_every_queue_once_between_them():
    services = _compose()["services"]
    ingest = _queues_of(_command(services["worker-ingest"]))
    other = _queues_of(_command(services["worker-other"]))
    assert ingest == ["ingest"]
    assert sorted(ingest + other) == sorted(QUEUES)
    assert DEFAULT_QUEUE in other


def test_compose_commands_are_the_images_entrypoints():
    services = _compose()["services"]
    assert _command(services["web"])[0] == "web"
    assert _command(services["worker-ingest"])[0] == "worker"
    assert _command(services["worker-other"])[0] == "worker"
    assert _command(services["beat"]) == ["beat"]
    entrypoint = (ROOT / "docker" / "entrypoint.sh").read_text()
    for mode in ("web)", "worker)", "beat)", "migrate)"):
        assert mode in entrypoint, mode
    assert "portal.gunicorn_conf" in entrypoint


def test_compose_healthchecks_use_healthz_and_only_web_serves_http():
    services = _compose()["services"]
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])
    for name in ("worker-ingest", "worker-other", "beat"):
        # The web's /healthz sees the heartbeats of every worker and beat; each worker's
        # own check asks /healthz for its queues, so a dead worker is marked unhealthy.
        assert "healthcheck.py" in " ".join(services[name]["healthcheck"]["test"]), name
    assert "ports" in services["web"]
    assert sum(1 for s in services.values() if _command(s) == ["beat"]) == 1


def test_compose_environment_matches_the_settings():
    services = _compose()["services"]
    common = services["web"]["environment"]
    assert common["DJANGO_DEBUG"] == "0"
    for name in ("web", "worker-ingest", "worker-other", "beat"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgresql://")
        assert env["REDIS_URL"].startswith("redis://")
        assert "CELERY_QUEUE" not in env, name  # that would put every task on one queue


def test_demo_worker_and_queue_settings_agree():
    """`make demo` starts one worker for every queue the settings route to."""
    source = (ROOT / "scripts" / "devservices.py").read_text()
    assert ",".join(QUEUES) in source
    assert settings_with()["WORKER_QUEUES"] == QUEUES


def test_dockerfile_is_multi_stage_non_root_and_installs_the_lock():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", dockerfile, re.M)) >= 2
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.M)
    assert "requirements.lock" in dockerfile
    assert "collectstatic" in dockerfile
    assert "compiletranslations" in dockerfile
    assert "docker/entrypoint.sh" in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "var", ".git"} <= set(ignored)


def test_ci_builds_the_image_only_where_an_engine_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "docker info" in ci
    assert "container build skipped: no container engine" in ci
