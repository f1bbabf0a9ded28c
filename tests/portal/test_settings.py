"""Production-mode guards, checked in fresh interpreters so the test run's settings stay put."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_without_secret_key_refuses_to_start():
    result = _manage("check", DJANGO_DEBUG="0", DJANGO_ALLOWED_HOSTS="portal.example.cn")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


def test_production_without_allowed_hosts_refuses_to_start():
    result = _manage("check", DJANGO_DEBUG="0", DJANGO_SECRET_KEY="x" * 60)
    assert result.returncode != 0
    assert "DJANGO_ALLOWED_HOSTS is not set" in result.stderr


def test_check_deploy_passes_with_the_documented_production_variables():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="k7#Qm2v9-production-secret-that-is-long-and-random-0f3a9c1e8b7d",
        DJANGO_ALLOWED_HOSTS="suanli.example.gov.cn",
        AUDIT_CHAIN_KEY="Zq4-production-audit-chain-key-that-is-long-and-random-91c0e",
    )
    assert result.returncode == 0, result.stderr


def test_production_without_an_audit_chain_key_refuses_to_start():
    """The audit chain's key has no default outside development (issue #15 item 5)."""
    result = _manage(
        "check",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="x" * 60,
        DJANGO_ALLOWED_HOSTS="portal.example.cn",
        AUDIT_CHAIN_KEY="",
    )
    assert result.returncode != 0
    assert "AUDIT_CHAIN_KEY is not set" in result.stderr


def test_a_non_postgresql_database_url_is_refused():
    result = _manage("check", DATABASE_URL="sqlite:///tmp/x.db")
    assert result.returncode != 0
    assert "must point at PostgreSQL" in result.stderr


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, True),
        ("1", True),
        (" Yes ", True),
        ("on", True),
        ("0", False),
        ("off", False),
        ("", False),
    ],
)
def test_env_bool_reads_the_usual_spellings(monkeypatch, raw, expected):
    from portal.env import env_bool

    if raw is None:
        monkeypatch.delenv("SUANLI_TEST_FLAG", raising=False)
    else:
        monkeypatch.setenv("SUANLI_TEST_FLAG", raw)
    assert env_bool("SUANLI_TEST_FLAG", True) is expected


def test_env_readers_name_the_variable_when_a_value_is_malformed(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    from portal.env import env_bool, env_int

    monkeypatch.setenv("SUANLI_TEST_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="SUANLI_TEST_FLAG must be one of"):
        env_bool("SUANLI_TEST_FLAG", False)
    monkeypatch.setenv("SUANLI_TEST_COUNT", "12a")
    with pytest.raises(ImproperlyConfigured, match="SUANLI_TEST_COUNT must be a whole number"):
        env_int("SUANLI_TEST_COUNT", 3)


def test_env_int_list_and_str_defaults(monkeypatch):
    from portal.env import env_int, env_list, env_str

    for name in ("SUANLI_TEST_COUNT", "SUANLI_TEST_HOSTS", "SUANLI_TEST_NAME"):
        monkeypatch.delenv(name, raising=False)
    assert (env_int("SUANLI_TEST_COUNT", 3), env_list("SUANLI_TEST_HOSTS", ["a"])) == (3, ["a"])
    assert env_str("SUANLI_TEST_NAME", "x") == "x"
    monkeypatch.setenv("SUANLI_TEST_COUNT", " ")
    monkeypatch.setenv("SUANLI_TEST_HOSTS", " a.example, ,b.example ")
    monkeypatch.setenv("SUANLI_TEST_NAME", "")
    assert env_int("SUANLI_TEST_COUNT", 3) == 3
    assert env_list("SUANLI_TEST_HOSTS") == ["a.example", "b.example"]
    assert env_str("SUANLI_TEST_NAME", "x") == ""  # set, even if empty
    monkeypatch.setenv("SUANLI_TEST_COUNT", "-7")
    assert env_int("SUANLI_TEST_COUNT", 3) == -7


def test_the_wsgi_application_loads_the_urlconf_and_freezes_startup_objects():
    import gc
    import importlib

    from django.core.handlers.wsgi import WSGIHandler

    gc.unfreeze()
    import portal.wsgi

    try:
        importlib.reload(portal.wsgi)
        assert isinstance(portal.wsgi.application, WSGIHandler)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
