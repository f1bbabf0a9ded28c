"""Redis down is not an error page: the cache answers as a miss (sign-in keeps working)
and a committed action whose e-mail cannot be queued still succeeds (the e-mail is
logged as not sent). Usage batches have their own outbox (tests/compute/test_faults.py)."""

from __future__ import annotations

import copy
import logging
import socket

import pytest
from django.core.cache import caches
from kombu.exceptions import OperationalError

from portal.queue import publish_on_commit
from tests.vouchers.conftest import company, complete_draft, sh_program  # noqa: F401
from vouchers import services
from vouchers.tasks import application_notify


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the block ends


@pytest.fixture
def redis_down(settings):
    dead = copy.deepcopy(settings.CACHES)
    dead["default"]["LOCATION"] = f"redis://127.0.0.1:{_closed_port()}/0"
    settings.CACHES = dead
    yield
    caches["default"].close()


def test_a_cache_that_cannot_reach_redis_answers_as_a_miss(redis_down):
    cache = caches["default"]
    assert cache.get("k", "fallback") == "fallback"
    assert cache.add("k", 1) is True  # a lock taken by add() is taken: fails open
    cache.set("k", 1)
    assert cache.get_many(["a", "b"]) == {}
    assert cache.has_key("k") is False
    with pytest.raises(ValueError, match="not found"):
        cache.incr("k")


def test_sign_in_works_while_redis_is_down(client, startup_user, redis_down, db):
    response = client.post(
        "/accounts/login/", {"login": startup_user.email, "password": "wrong password"}
    )
    assert response.status_code == 200  # the form again, with its error
    startup_user.set_password("right password 2026")
    startup_user.save()
    response = client.post(
        "/accounts/login/", {"login": startup_user.email, "password": "right password 2026"}
    )
    assert response.status_code == 302


def test_a_committed_step_succeeds_when_its_e_mail_cannot_be_queued(
    sh_program, company, startup_user, monkeypatch, django_capture_on_commit_callbacks, caplog
):
    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(application_notify, "delay", broker_down)
    app = complete_draft(sh_program, company, startup_user)
    with (
        caplog.at_level(logging.ERROR, logger="portal.queue"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        services.application_submit(application=app, actor=startup_user)
    app.refresh_from_db()
    assert app.state == "submitted"
    assert "application_notify" in caplog.text and "not sent" in caplog.text


def test_publish_on_commit_sends_nothing_when_rolled_back(
    monkeypatch, django_capture_on_commit_callbacks, db
):
    from django.db import transaction

    sent = []
    monkeypatch.setattr(application_notify, "delay", lambda *a, **k: sent.append(a))
    with django_capture_on_commit_callbacks(execute=True):
        try:
            with transaction.atomic():
                publish_on_commit(application_notify, 1, "submitted", 1)
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
        publish_on_commit(application_notify, 2, "submitted", 2)
    assert sent == [(2, "submitted", 2)]
