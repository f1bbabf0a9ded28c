"""One sign-in form for everyone, with its failed-login limits (issue #15): the admin's
own login form is never served, and failures lock out by account and by address."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.test import Client

from tests.factories import UserFactory

RIGHT = "pw-for-tests"


@pytest.fixture
def platform_admin(db):
    return UserFactory(email="root@platform.test", is_staff=True, is_superuser=True)


def _signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def _locked_out(response) -> bool:
    return response.context["form"].has_error("__all__", code="too_many_login_attempts")


def test_admin_login_page_sends_to_the_sites_sign_in(client, platform_admin):
    response = client.get("/admin/login/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/admin/"
    # The admin index, signed out, ends up at the same place (via /admin/login/).
    response = client.get("/admin/", follow=True)
    assert response.redirect_chain[-1][0] == "/accounts/login/?next=/admin/"
    assert b'name="login"' in response.content  # allauth's form, not the admin's
    assert b'name="username"' not in response.content


def test_admin_login_form_is_never_served_nor_takes_a_password(client, platform_admin):
    for _ in range(40):
        response = client.post(
            "/admin/login/?next=/admin/", {"username": platform_admin.email, "password": "wrong"}
        )
        assert response.status_code == 302
        assert not _signed_in(client)
    response = client.post(
        "/admin/login/?next=/admin/", {"username": platform_admin.email, "password": RIGHT}
    )
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert not _signed_in(client)
    assert client.get("/admin/").status_code == 302


def test_forty_wrong_passwords_lock_the_platform_admin_out(client, platform_admin):
    for _ in range(40):
        response = client.post(
            "/accounts/login/?next=/admin/", {"login": platform_admin.email, "password": "wrong"}
        )
        assert response.status_code in (200, 429)
        assert not _signed_in(client)
    response = client.post(
        "/accounts/login/?next=/admin/", {"login": platform_admin.email, "password": RIGHT}
    )
    assert not _signed_in(client)
    assert response.status_code == 429 or _locked_out(response)


def test_lockout_by_account_holds_from_another_address(platform_admin):
    attacker = Client(REMOTE_ADDR="203.0.113.7")
    for _ in range(5):
        attacker.post("/accounts/login/", {"login": platform_admin.email, "password": "wrong"})
    owner = Client(REMOTE_ADDR="198.51.100.20")
    response = owner.post("/accounts/login/", {"login": platform_admin.email, "password": RIGHT})
    assert not _signed_in(owner)
    assert _locked_out(response)


def test_lockout_by_address_holds_across_accounts(db):
    victims = [UserFactory(email=f"victim{i}@startup.test") for i in range(11)]
    attacker = Client(REMOTE_ADDR="203.0.113.8")
    for victim in victims[:10]:  # one failure each: no account reaches its limit
        attacker.post("/accounts/login/", {"login": victim.email, "password": "wrong"})
    response = attacker.post("/accounts/login/", {"login": victims[10].email, "password": RIGHT})
    assert not _signed_in(attacker)
    assert _locked_out(response)
    # Someone else, from another address, still signs in.
    other = Client(REMOTE_ADDR="198.51.100.21")
    other.post("/accounts/login/", {"login": victims[10].email, "password": RIGHT})
    assert _signed_in(other)


def test_admin_is_reached_after_signing_in_through_allauth(client, platform_admin):
    response = client.post(
        "/accounts/login/?next=/admin/", {"login": platform_admin.email, "password": RIGHT}
    )
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    # Signed in, /admin/login/ goes on to where it was asked to.
    assert client.get("/admin/login/?next=/admin/portal/city/")["Location"] == (
        "/admin/portal/city/"
    )
    assert client.get("/admin/login/?next=https://evil.example/")["Location"] == "/admin/"


def test_signed_in_user_without_admin_access_gets_403_not_a_loop(client, startup_user):
    client.force_login(startup_user)
    assert client.get("/admin/login/?next=/admin/").status_code == 403


def test_an_address_gets_thirty_failures_an_hour_however_slowly_it_tries(db):
    """Ten a minute is the burst limit; over an hour an address gets 30 failures."""
    victims = [UserFactory(email=f"slow{i}@startup.test") for i in range(31)]
    attacker = Client(REMOTE_ADDR="203.0.113.9")
    with time_machine.travel("2026-03-02 09:00 +0800", tick=False) as traveller:
        for i, victim in enumerate(victims[:30]):
            if i and i % 5 == 0:
                traveller.shift(timedelta(minutes=2))  # well under 10 a minute
            attacker.post("/accounts/login/", {"login": victim.email, "password": "wrong"})
        traveller.shift(timedelta(minutes=2))
        response = attacker.post(
            "/accounts/login/", {"login": victims[30].email, "password": RIGHT}
        )
        assert not _signed_in(attacker)
        assert _locked_out(response)
        traveller.shift(timedelta(hours=1))
        attacker.post("/accounts/login/", {"login": victims[30].email, "password": RIGHT})
        assert _signed_in(attacker)


def test_an_account_stays_locked_for_fifteen_minutes(platform_admin):
    attacker = Client(REMOTE_ADDR="203.0.113.10")
    owner = Client(REMOTE_ADDR="198.51.100.22")
    with time_machine.travel("2026-03-02 09:00 +0800", tick=False) as traveller:
        for _ in range(5):
            attacker.post("/accounts/login/", {"login": platform_admin.email, "password": "x"})
        traveller.shift(timedelta(minutes=10))
        response = owner.post(
            "/accounts/login/", {"login": platform_admin.email, "password": RIGHT}
        )
        assert _locked_out(response)
        traveller.shift(timedelta(minutes=6))
        owner.post("/accounts/login/", {"login": platform_admin.email, "password": RIGHT})
        assert _signed_in(owner)
