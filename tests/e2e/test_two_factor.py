"""Two-factor sign-in in the browser (issue #15): an approver signing in for the first
time lands on enrolment, reads the secret off the page, activates it with a code from
it, reaches the staff pages; signs out, signs in again with a code (a wrong one first),
and another time with a recovery code. The checks are the real ones (`auth_enforced`)."""

from __future__ import annotations

import time

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes

from tests.e2e.conftest import sign_in
from tests.mfa import totp_code

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.auth_enforced,
    pytest.mark.django_db(transaction=True),
]


def _sign_out(page) -> None:
    page.click("form.sign-out button[type=submit]")
    page.wait_for_load_state()


def test_enrol_then_sign_in_with_a_code_and_with_a_recovery_code(live_server, new_page, shanghai):
    base = live_server.url
    approver = shanghai.approver
    page = new_page(locale="en-GB")
    sign_in(page, base, approver.email)
    # The password was right; the staff pages wait for a second factor.
    page.goto(f"{base}/shanghai/staff/")
    page.wait_for_load_state()
    assert page.url == f"{base}/accounts/2fa/"

    page.goto(f"{base}/accounts/2fa/totp/activate/")
    secret = page.input_value("#authenticator_secret")
    assert len(secret) >= 16
    page.fill("input[name=code]", totp_code(secret))
    page.click("main form button[type=submit]")
    page.wait_for_load_state()
    assert Authenticator.objects.filter(user=approver, type=Authenticator.Type.TOTP).exists()
    page.goto(f"{base}/shanghai/staff/")
    page.wait_for_load_state()
    assert page.url == f"{base}/shanghai/staff/"

    # Next sign-in: the password, then the code (the one of the next period: the one
    # just used is good once).
    _sign_out(page)
    sign_in(page, base, approver.email)
    assert page.url == f"{base}/accounts/2fa/authenticate/"
    page.fill("input[name=code]", "000000")
    page.click("main form button[type=submit]")
    page.wait_for_load_state()
    assert page.url == f"{base}/accounts/2fa/authenticate/"
    page.fill("input[name=code]", totp_code(secret, time.time() + 30))
    page.click("main form button[type=submit]")
    page.wait_for_load_state()
    page.goto(f"{base}/shanghai/staff/")
    page.wait_for_load_state()
    assert page.url == f"{base}/shanghai/staff/"

    # And with a recovery code, in a browser of its own.
    recovery = RecoveryCodes(
        Authenticator.objects.get(user=approver, type=Authenticator.Type.RECOVERY_CODES)
    ).get_unused_codes()[0]
    other = new_page(locale="en-GB")
    sign_in(other, base, approver.email)
    other.fill("input[name=code]", recovery)
    other.click("main form button[type=submit]")
    other.wait_for_load_state()
    other.goto(f"{base}/shanghai/staff/")
    other.wait_for_load_state()
    assert other.url == f"{base}/shanghai/staff/"


def test_enrol_a_passkey_and_sign_in_with_it(live_server, new_page, shanghai, settings):
    """Chromium's virtual authenticator (a platform passkey with user verification)
    stands in for a phone or security key. The live server speaks http to localhost,
    which browsers treat as secure; allauth is told to accept that origin, as in
    development."""
    settings.MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = True
    base = live_server.url.replace("127.0.0.1", "localhost")
    manager = shanghai.manager
    page = new_page(locale="en-GB")
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
            }
        },
    )
    sign_in(page, base, manager.email)
    page.goto(f"{base}/accounts/2fa/webauthn/add/")
    page.fill("input[name=name]", "laptop")
    page.click("#mfa_webauthn_add")
    page.wait_for_url(lambda url: "/webauthn/add/" not in url)
    assert Authenticator.objects.filter(user=manager, type=Authenticator.Type.WEBAUTHN).exists()
    page.goto(f"{base}/shanghai/staff/")
    assert page.url == f"{base}/shanghai/staff/"

    _sign_out(page)
    sign_in(page, base, manager.email)
    assert page.url == f"{base}/accounts/2fa/authenticate/"
    page.click("#mfa_webauthn_authenticate")
    page.wait_for_url(lambda url: "/2fa/authenticate/" not in url)
    page.goto(f"{base}/shanghai/staff/")
    assert page.url == f"{base}/shanghai/staff/"
