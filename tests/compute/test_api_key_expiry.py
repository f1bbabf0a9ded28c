"""API keys (issue #15): an optional expiry date, refused after it with a 401 that says
so, a reminder to the data center's operators before, and the raw key shown once and
never logged nor audited."""

from __future__ import annotations

import io
import logging
import re
from datetime import date, timedelta

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from compute.models import ApiKey
from compute.services import api_key_issue, api_keys_expiry_remind
from portal.audit import SYSTEM
from portal.errors import DomainError
from portal.models import AuditEvent
from tests.compute.conftest import api_client
from tests.factories import UserFactory

NOW = "2026-11-02 10:00 +0800"
RAW = re.compile(r"sk_live_[0-9a-f]{8}_[A-Za-z0-9_-]{40,}")


def test_a_key_works_through_its_last_day_and_is_refused_after(ledger_world):
    with time_machine.travel(NOW, tick=False) as traveller:
        _key, raw = api_key_issue(
            data_center=ledger_world.dc, actor=SYSTEM, expires_on=date(2026, 11, 30)
        )
        client = api_client(raw)
        url = f"/api/v1/vouchers/{ledger_world.voucher.code}"
        assert client.get(url).status_code == 200
        traveller.move_to("2026-11-30 23:59 +0800")
        assert client.get(url).status_code == 200
        traveller.move_to("2026-12-01 00:00:01 +0800")
        response = client.get(url, HTTP_ACCEPT_LANGUAGE="en")
        assert response.status_code == 401
        body = response.json()["error"]
        assert body["code"] == "unauthenticated"
        assert "expired" in body["message"] and "2026-12-01 00:00" in body["message"]
        # The other keys of the data center are untouched.
        assert ledger_world.api.get(url).status_code == 200


def test_an_expired_key_counts_as_a_failed_authentication(ledger_world, settings):
    settings.API_AUTH_FAILURE_LIMIT = "3/min"
    with time_machine.travel(NOW, tick=False) as traveller:
        _key, raw = api_key_issue(
            data_center=ledger_world.dc, actor=SYSTEM, expires_on=date(2026, 11, 2)
        )
        traveller.move_to("2026-11-03 00:00:01 +0800")
        client = api_client(raw)
        codes = [client.get("/api/v1/redemptions").status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]


def test_an_expiry_date_in_the_past_is_refused(ledger_world, operator, client):
    with time_machine.travel(NOW, tick=False):
        with pytest.raises(DomainError) as refused:
            api_key_issue(data_center=ledger_world.dc, actor=SYSTEM, expires_on=date(2026, 11, 1))
        assert refused.value.fields == {"expires_on": [refused.value.message]}
        client.force_login(operator)
        response = client.post(
            f"/dc/{ledger_world.dc.slug}/keys/", {"name": "old", "expires_on": "2026-11-01"}
        )
        assert response.status_code == 200
        assert response.context["form"].errors["expires_on"]
        assert response.context["new_key"] is None
    assert not ApiKey.objects.filter(name="old").exists()


def test_operators_are_reminded_once_before_a_key_expires(ledger_world, operator):
    english = UserFactory(email="ops2@guian.test", preferred_language="en")
    ledger_world.dc.operators.add(english)
    other_operator = UserFactory(email="ops@zhongwei.test")
    ledger_world.other_dc.operators.add(other_operator)
    with time_machine.travel(NOW, tick=False) as traveller:
        soon, _ = api_key_issue(
            data_center=ledger_world.dc, actor=SYSTEM, name="billing", expires_on=date(2026, 11, 12)
        )
        api_key_issue(data_center=ledger_world.dc, actor=SYSTEM, expires_on=date(2027, 6, 1))
        revoked, _ = api_key_issue(
            data_center=ledger_world.dc, actor=SYSTEM, expires_on=date(2026, 11, 10)
        )
        ApiKey.objects.filter(pk=revoked.pk).update(revoked_at=timezone.now())
        assert api_keys_expiry_remind() == 2
        assert sorted(m.to[0] for m in mail.outbox) == [english.email, operator.email]
        english_mail = next(m for m in mail.outbox if m.to == [english.email])
        assert soon.prefix in english_mail.subject
        assert "2026-11-13 00:00" in english_mail.body
        assert f"/dc/{ledger_world.dc.slug}/keys/" in english_mail.body
        chinese_mail = next(m for m in mail.outbox if m.to == [operator.email])
        assert "密钥" in chinese_mail.subject
        # Once per key: the next days send nothing more.
        traveller.shift(timedelta(days=1))
        assert api_keys_expiry_remind() == 0
        assert len(mail.outbox) == 2


def test_the_reminder_runs_daily_from_beat(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["remind-expiring-api-keys"]
    assert entry["task"] == "compute.tasks.api_keys_expiry_remind_task"


def test_console_shows_expiry_and_expired_keys(ledger_world, operator, client):
    with time_machine.travel(NOW, tick=False) as traveller:
        api_key_issue(
            data_center=ledger_world.dc, actor=SYSTEM, name="short", expires_on=date(2026, 11, 5)
        )
        traveller.move_to("2026-11-10 10:00 +0800")
        client.force_login(operator)
        html = client.get(f"/dc/{ledger_world.dc.slug}/keys/").content.decode()
        assert "2026-11-06 00:00" in html
        assert "已过期" in html or "Expired" in html


def test_issue_api_key_command_takes_an_expiry(ledger_world):
    out, err = io.StringIO(), io.StringIO()
    with time_machine.travel(NOW, tick=False):
        call_command(
            "issue_api_key", ledger_world.dc.slug, "--expires", "2027-01-31", stdout=out, stderr=err
        )
    key = ApiKey.objects.get(prefix=out.getvalue().strip()[:16])
    assert timezone.localtime(key.expires_at).isoformat() == "2027-02-01T00:00:00+08:00"


def _leaks(raw: str, records: list[logging.LogRecord]) -> list[str]:
    found = []
    for record in records:
        text = record.getMessage() + " " + repr(record.__dict__)
        if raw in text:
            found.append(f"{record.name}: {record.getMessage()[:200]}")
    return found


def test_a_raw_key_is_shown_once_and_never_logged_nor_audited(
    ledger_world, operator, client, caplog
):
    caplog.set_level(logging.DEBUG)
    logging.getLogger("django.db.backends").setLevel(logging.DEBUG)
    client.force_login(operator)
    with CaptureQueriesContext(connection) as queries:  # SQL is logged at DEBUG as well
        response = client.post(
            f"/dc/{ledger_world.dc.slug}/keys/", {"name": "billing", "expires_on": ""}
        )
        assert response.status_code == 200
        raw = response.context["new_key"]
        assert RAW.fullmatch(raw)
        # Shown on this page, and kept by no cache.
        assert raw in response.content.decode()
        assert "no-store" in response["Cache-Control"]
        # Used, rightly and wrongly; issued by the command too.
        api = api_client(raw)
        assert api.get(f"/api/v1/vouchers/{ledger_world.voucher.code}").status_code == 200
        assert api_client(raw + "x").get("/api/v1/redemptions").status_code == 401
        out = io.StringIO()
        call_command("issue_api_key", ledger_world.dc.slug, stdout=out, stderr=io.StringIO())
        command_raw = out.getvalue().strip()
        assert RAW.fullmatch(command_raw)
    assert caplog.records, "the test must see some log records"
    for secret in (raw, command_raw):
        assert _leaks(secret, caplog.records) == []
        assert not any(secret in q["sql"] for q in queries.captured_queries)
        for event in AuditEvent.objects.filter(action="api_key.issue"):
            assert secret not in repr(event.data) and secret not in event.hash
    # Never again: the keys page after that shows only prefixes.
    again = client.get(f"/dc/{ledger_world.dc.slug}/keys/").content.decode()
    assert raw not in again and raw[:16] in again
    # What is stored is a hash.
    assert not ApiKey.objects.filter(key_hash=raw).exists()
    assert not ApiKey.objects.filter(name__contains=raw[16:]).exists()
