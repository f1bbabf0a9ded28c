"""Sessions end (issue #15): staff of any city, data-center operators and platform
staff after 30 minutes idle or 12 hours signed in; company users after 2 days idle or
2 weeks; a user sees their sessions and sign-ins and signs out everywhere."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from portal.models import AuditEvent, SignIn
from tests.factories import DataCenterFactory, UserFactory

START = "2026-03-02 09:00 +0800"
PASSWORD = "pw-for-tests"


def _sign_in(user, address: str = "198.51.100.30") -> Client:
    client = Client(REMOTE_ADDR=address, HTTP_USER_AGENT="Firefox/140 test")
    response = client.post("/accounts/login/", {"login": user.email, "password": PASSWORD})
    assert response.status_code == 302, response.content[:500]
    return client


def _signed_in(client: Client) -> bool:
    return client.get("/accounts/profile/").status_code == 200


@pytest.fixture
def operator(db):
    user = UserFactory(email="ops@dc.test")
    DataCenterFactory(slug="guian").operators.add(user)
    return user


@pytest.fixture
def platform_admin(db):
    return UserFactory(email="root@platform.test", is_staff=True, is_superuser=True)


@pytest.mark.parametrize("who", ["reviewer", "auditor", "manager", "operator", "platform_admin"])
def test_privileged_users_are_signed_out_after_thirty_idle_minutes(
    who, shanghai, operator, platform_admin
):
    user = {"operator": operator, "platform_admin": platform_admin}.get(who) or getattr(
        shanghai, who
    )
    with time_machine.travel(START, tick=False) as traveller:
        client = _sign_in(user)
        traveller.shift(timedelta(minutes=29))
        assert _signed_in(client)
        traveller.shift(timedelta(minutes=29))  # 29 idle minutes since the last request
        assert _signed_in(client)
        traveller.shift(timedelta(minutes=31))
        response = client.get("/accounts/profile/")
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
        assert not _signed_in(client)


def test_privileged_sessions_end_after_twelve_hours_however_active(shanghai):
    with time_machine.travel(START, tick=False) as traveller:
        client = _sign_in(shanghai.approver)
        for _ in range(11 * 4 + 3):  # a request every 15 minutes for 11 h 45 min
            traveller.shift(timedelta(minutes=15))
            assert _signed_in(client)
        traveller.shift(timedelta(minutes=16))
        response = client.get("/accounts/profile/", follow=True)
        assert response.redirect_chain[-1][0].startswith("/accounts/login/")
        assert "12" in response.content.decode()  # says why


def test_company_users_keep_a_longer_session(startup_user):
    with time_machine.travel(START, tick=False) as traveller:
        client = _sign_in(startup_user)
        traveller.shift(timedelta(hours=13))  # past both staff limits
        assert _signed_in(client)
        traveller.shift(timedelta(days=1, hours=23))
        assert _signed_in(client)
        traveller.shift(timedelta(days=2, minutes=1))  # idle for over two days
        assert not _signed_in(client)


def test_company_sessions_end_after_two_weeks_however_active(startup_user):
    with time_machine.travel(START, tick=False) as traveller:
        client = _sign_in(startup_user)
        for _ in range(13):
            traveller.shift(timedelta(days=1))
            assert _signed_in(client)
        traveller.shift(timedelta(days=1, minutes=1))
        assert not _signed_in(client)


def test_a_role_granted_mid_session_brings_the_strict_limits(startup_user, shanghai):
    from tests.factories import MembershipFactory

    with time_machine.travel(START, tick=False) as traveller:
        client = _sign_in(startup_user)
        MembershipFactory(user=startup_user, city=shanghai.city, role="reviewer")
        traveller.shift(timedelta(minutes=2))
        assert _signed_in(client)  # the policy is decided again here
        traveller.shift(timedelta(minutes=31))
        assert not _signed_in(client)


def test_the_session_store_forgets_an_idle_staff_session_too(shanghai):
    """With "remember me" ticked the cookie outlives the browser: the store (and the
    cookie) then keep a staff session no longer than the idle limit."""
    with time_machine.travel(START, tick=False) as traveller:
        client = Client(REMOTE_ADDR="198.51.100.30")
        client.post(
            "/accounts/login/",
            {"login": shanghai.reviewer.email, "password": PASSWORD, "remember": "on"},
        )
        traveller.shift(timedelta(minutes=2))
        response = client.get("/accounts/profile/")
        assert response.status_code == 200
        session = Session.objects.get(session_key=client.session.session_key)
        assert session.expire_date <= timezone.now() + timedelta(minutes=30)
        assert response.cookies["sessionid"]["max-age"] <= 30 * 60


def test_sessions_page_lists_sessions_and_sign_ins_of_the_user_only(shanghai, startup_user):
    with time_machine.travel(START, tick=False) as traveller:
        laptop = _sign_in(shanghai.manager, "198.51.100.31")
        traveller.shift(timedelta(minutes=5))
        phone = _sign_in(shanghai.manager, "198.51.100.32")
        _sign_in(startup_user, "198.51.100.99")
        phone.post("/accounts/logout/")
        page = laptop.get("/accounts/sessions/")
        assert page.status_code == 200
        live = page.context["sessions"]
        assert [s.ip for s in live] == ["198.51.100.31"]
        assert [s.ip for s in page.context["sign_ins"]] == ["198.51.100.32", "198.51.100.31"]
        html = page.content.decode()
        assert "198.51.100.99" not in html
        assert "Firefox/140 test" in html


def test_sign_out_everywhere_ends_every_session(shanghai):
    manager = shanghai.manager
    with time_machine.travel(START, tick=False):
        laptop = _sign_in(manager, "198.51.100.31")
        phone = _sign_in(manager, "198.51.100.32")
        other = _sign_in(shanghai.reviewer)
        response = laptop.post("/accounts/sessions/")
        assert response.status_code == 302
        assert not _signed_in(laptop)
        assert not _signed_in(phone)
        assert _signed_in(other)
        assert not SignIn.objects.filter(user=manager, ended_at__isnull=True).exists()
        event = AuditEvent.objects.get(action="user.sign_out_everywhere")
        assert event.actor == manager and event.data == {"sessions": 2}


def test_one_other_session_is_signed_out_and_no_one_elses(shanghai):
    manager = shanghai.manager
    with time_machine.travel(START, tick=False):
        laptop = _sign_in(manager, "198.51.100.31")
        phone = _sign_in(manager, "198.51.100.32")
        other = _sign_in(shanghai.reviewer, "198.51.100.33")
        phone_sign_in = SignIn.objects.get(user=manager, ip="198.51.100.32")
        others_sign_in = SignIn.objects.get(user=shanghai.reviewer)
        page = laptop.get("/accounts/sessions/").content.decode()
        assert f'name="end" value="{phone_sign_in.pk}"' in page
        # Another user's session is not the manager's to end (nothing happens).
        laptop.post("/accounts/sessions/", {"end": others_sign_in.pk})
        assert _signed_in(other)
        laptop.post("/accounts/sessions/", {"end": phone_sign_in.pk})
        assert not _signed_in(phone)
        assert _signed_in(laptop)
        event = AuditEvent.objects.get(action="user.sign_out_session")
        assert event.actor == manager and event.data == {"sign_in": phone_sign_in.pk}


def test_sessions_page_needs_a_signed_in_user(client, db):
    assert client.get("/accounts/sessions/")["Location"].startswith("/accounts/login/")
    assert client.post("/accounts/sessions/").status_code == 302


def test_a_session_survives_a_key_rotation_while_the_old_key_is_a_fallback(
    startup_user, shanghai, settings
):
    """SECURITY.md, rotating DJANGO_SECRET_KEY: with the former key as a fallback nobody
    is signed out, and a session used meanwhile moves to the new key; one not used
    before the fallback is removed ends."""
    active, idle = _sign_in(startup_user), _sign_in(shanghai.reviewer)
    old = settings.SECRET_KEY
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "a-new-key-" + "x" * 50, [old]
    assert _signed_in(active)
    settings.SECRET_KEY_FALLBACKS = []
    assert _signed_in(active)
    assert not _signed_in(idle)


def test_the_fallback_keys_come_from_the_environment():
    import os
    import subprocess
    import sys
    from pathlib import Path

    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from django.conf import settings; print(settings.SECRET_KEY_FALLBACKS)",
        ],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "DJANGO_SECRET_KEY_FALLBACKS": "old-key-1, old-key-2"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout.strip().splitlines()[-1] == "['old-key-1', 'old-key-2']", result.stderr
