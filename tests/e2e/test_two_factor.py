"""Two-factor sign-in in the browser (issue #15): an approver signing in for the first
time lands on enrolment, reads the secret off the page, activates it with a code from
it (computed here as an authenticator app does, `tests.mfa.totp_code`), reaches the
staff pages; signs out, signs in again with a code (a wrong one first), and another time
with a recovery code. Repeated wrong passwords, and repeated wrong codes, lock the
account out: then even the right password or code is refused. The checks are the real
ones (`auth_enforced`). Each step leaves a screenshot in
`test-artifacts/e2e/two-factor/<test>/NN-step.png`."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from django.utils import translation

from tests.e2e.conftest import sign_in
from tests.mfa import totp_code

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.auth_enforced,
    pytest.mark.django_db(transaction=True),
]


ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e" / "two-factor"


def _said(page, text: str) -> bool:
    """Whether the page shows allauth's or the portal's `text`, in the
    language the page is in (the user's, Chinese here, whatever the browser asks)."""
    shown = page.inner_text("body")
    return any(_in(language, text) in shown for language in ("en", "zh-hans"))


def _in(language: str, text: str) -> str:
    with translation.override(language):
        return translation.gettext(text)


LOCKED = "Too many failed login attempts. Try again later."


class Shots:
    """Numbered full-page screenshots of one test, in a folder emptied first."""

    def __init__(self, name: str) -> None:
        self.folder = ARTIFACTS / name
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        self.step = 0

    def __call__(self, page, name: str) -> None:
        self.step += 1
        page.screenshot(path=str(self.folder / f"{self.step:02d}-{name}.png"), full_page=True)


def _sign_out(page) -> None:
    page.click("form.sign-out button[type=submit]")
    page.wait_for_load_state()


def _submit_code(page, code: str) -> None:
    page.fill("input[name=code]", code)
    page.click("main form button[type=submit]")
    page.wait_for_load_state()


def _enrol(page, base: str, shot: Shots) -> str:
    """Activate an authenticator app from the enrolment page; return its secret."""
    page.goto(f"{base}/accounts/2fa/totp/activate/")
    secret = page.input_value("#authenticator_secret")
    assert len(secret) >= 16
    shot(page, "totp-activate")
    _submit_code(page, totp_code(secret))
    shot(page, "totp-activated")
    return secret


def test_enrol_then_sign_in_with_a_code_and_with_a_recovery_code(live_server, new_page, shanghai):
    base = live_server.url
    approver = shanghai.approver
    shot = Shots("enrol-code-recovery")
    page = new_page(locale="en-GB")
    sign_in(page, base, approver.email)
    # The password was right; the staff pages wait for a second factor.
    page.goto(f"{base}/shanghai/staff/")
    page.wait_for_load_state()
    assert page.url == f"{base}/accounts/2fa/"
    assert _said(
        page,
        "Your role requires two-factor sign-in. Set up an authenticator app or a passkey "
        "to continue.",
    )
    shot(page, "enrolment-required")

    secret = _enrol(page, base, shot)
    assert Authenticator.objects.filter(user=approver, type=Authenticator.Type.TOTP).exists()
    page.goto(f"{base}/shanghai/staff/")
    page.wait_for_load_state()
    assert page.url == f"{base}/shanghai/staff/"
    shot(page, "staff-after-enrolment")
    # The recovery codes are on offer from the account's pages.
    page.goto(f"{base}/accounts/2fa/recovery-codes/")
    page.wait_for_load_state()
    shot(page, "recovery-codes")

    # Next sign-in: the password, then the code (the one of the next period: the one
    # just used is good once).
    _sign_out(page)
    sign_in(page, base, approver.email)
    assert page.url == f"{base}/accounts/2fa/authenticate/"
    shot(page, "code-asked")
    _submit_code(page, "000000")
    assert page.url == f"{base}/accounts/2fa/authenticate/"
    shot(page, "wrong-code-refused")
    _submit_code(page, totp_code(secret, time.time() + 30))
    page.goto(f"{base}/shanghai/staff/")
    page.wait_for_load_state()
    assert page.url == f"{base}/shanghai/staff/"
    shot(page, "signed-in-with-code")

    # And with a recovery code, in a browser of its own.
    recovery = RecoveryCodes(
        Authenticator.objects.get(user=approver, type=Authenticator.Type.RECOVERY_CODES)
    ).get_unused_codes()[0]
    other = new_page(locale="en-GB")
    sign_in(other, base, approver.email)
    _submit_code(other, recovery)
    other.goto(f"{base}/shanghai/staff/")
    other.wait_for_load_state()
    assert other.url == f"{base}/shanghai/staff/"
    shot(other, "signed-in-with-recovery-code")
    # A recovery code is good once.
    assert (
        recovery
        not in RecoveryCodes(
            Authenticator.objects.get(user=approver, type=Authenticator.Type.RECOVERY_CODES)
        ).get_unused_codes()
    )


def _wrong_password(page, base: str, email: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", "not-the-password")
    page.click("main form button[type=submit]")
    page.wait_for_load_state()


def _staff_page_reached(page, base: str) -> bool:
    page.goto(f"{base}/shanghai/staff/")
    page.wait_for_load_state()
    return page.url == f"{base}/shanghai/staff/"


def test_wrong_passwords_lock_the_account_out(live_server, new_page, shanghai):
    """Five wrong passwords for the account (settings.ACCOUNT_RATE_LIMITS, 5 in 15
    minutes) and the right one is refused too, in another browser as well."""
    base = live_server.url
    approver = shanghai.approver
    shot = Shots("lockout-passwords")
    page = new_page(locale="en-GB")
    for attempt in range(5):
        _wrong_password(page, base, approver.email)
        assert not _said(page, LOCKED)
        if attempt == 0:
            shot(page, "wrong-password")
    sign_in(page, base, approver.email)
    assert _said(page, LOCKED)
    shot(page, "locked-out")
    assert not _staff_page_reached(page, base)
    other = new_page(locale="en-GB")
    sign_in(other, base, approver.email)
    assert _said(other, LOCKED)
    assert not _staff_page_reached(other, base)


def test_wrong_codes_lock_the_account_out(live_server, new_page, shanghai):
    """An enrolled approver, the password right, then five wrong codes: the right code
    is refused after them, in another browser as well, and no staff page is reached."""
    base = live_server.url
    approver = shanghai.approver
    shot = Shots("lockout-codes")
    page = new_page(locale="en-GB")
    sign_in(page, base, approver.email)
    secret = _enrol(page, base, shot)
    _sign_out(page)

    sign_in(page, base, approver.email)
    for _ in range(5):
        assert page.url == f"{base}/accounts/2fa/authenticate/"
        _submit_code(page, "123456" if totp_code(secret) != "123456" else "654321")
    shot(page, "wrong-codes")
    _submit_code(page, totp_code(secret, time.time() + 30))
    assert _said(page, LOCKED)
    shot(page, "locked-out")
    assert not _staff_page_reached(page, base)

    # The codes are counted for the account, wherever they are typed: in a browser of
    # its own the password is right, and the code still refused.
    other = new_page(locale="en-GB")
    sign_in(other, base, approver.email)
    assert other.url == f"{base}/accounts/2fa/authenticate/"
    _submit_code(other, totp_code(secret, time.time() + 60))
    assert _said(other, LOCKED)
    shot(other, "locked-out-elsewhere")
    assert not _staff_page_reached(other, base)


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
