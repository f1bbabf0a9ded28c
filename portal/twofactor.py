"""Two-factor sign-in (issue #15): allauth's MFA — an authenticator app (TOTP) with
recovery codes, and passkeys / security keys (WebAuthn) where the browser offers them.

- **Who must.** Whoever `portal.signin.is_privileged` names (superusers, platform staff,
  staff of any city, data-center operators) cannot use any page but their own account
  pages until they have enrolled a second factor: `TwoFactorMiddleware` sends them to
  `/accounts/2fa/` after the password step. Company users may enrol; they are not made to.
- **Every session of such a user has passed the second factor.** Once enrolled,
  allauth's sign-in asks for the code (or the passkey) before the session exists; a
  session that has not (one that signed in before the user enrolled elsewhere) is signed
  out. A session in which the user enrolled counts: they just proved the authenticator.
- **Adding and removing authenticators is audited** (`user.mfa_added`, `user.mfa_removed`
  on the platform chain) and, for a privileged user, the last authenticator app cannot
  be removed (allauth's adapter hook); removing a last passkey sends them back to
  enrolment by the rule above.

The enrolment is trust on first use: whoever signs in first with the password enrols.
SECURITY.md says so, and the sign-in history shows it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from allauth.account.internal.flows.login import get_authentication_records
from allauth.mfa.adapter import DefaultMFAAdapter
from allauth.mfa.models import Authenticator
from allauth.mfa.signals import authenticator_added, authenticator_removed
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext as _

from portal.audit import audit_record
from portal.models import User
from portal.signin import PRIVILEGED, is_privileged

# Set in the session where the user enrolled a second factor (they proved it there).
ENROLLED_HERE = "_suanli_mfa_enrolled_here"
SECOND_FACTORS = (Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN)

# What never uses a session's rights (static files, the API's keys, probes).
SESSIONLESS_PREFIXES = ("/static/", "/api/", "/healthz", "/metrics")
# What a privileged user without a second factor may still use: allauth's pages (the
# enrolment itself, sign-out, password, re-authentication), their own account pages
# under /accounts/, and the language switch.
ACCOUNT_PREFIXES = ("/accounts/", "/i18n/")
ENROL_PREFIX = "/accounts/2fa/"


def mfa_required(user: User) -> bool:
    """Must this user sign in with a second factor?"""
    return is_privileged(user)


def mfa_enrolled(user: User) -> bool:
    """Has the user an authenticator app or a passkey (recovery codes alone are not
    one: they come with an authenticator and go with it)?"""
    return Authenticator.objects.filter(user_id=user.pk, type__in=SECOND_FACTORS).exists()


def mfa_satisfied(request: HttpRequest) -> bool:
    """May this signed-in session act on privileged pages? The user has a second factor
    and this session used it at sign-in (or enrolled it)."""
    user = request.user
    if not isinstance(user, User):  # anonymous: nobody to have passed a second factor
        return False
    if not mfa_enrolled(user):
        return False
    if request.session.get(ENROLLED_HERE):
        return True
    return any(r.get("method") == "mfa" for r in get_authentication_records(request, user))


class TwoFactorMiddleware:
    """After allauth's `AccountMiddleware`. A privileged user without a second factor is
    sent to enrolment from every page but their account's (GET and POST alike: nothing
    is done on their behalf); an enrolled one whose session skipped the second factor is
    signed out and asked to sign in."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if (
            user is None
            or not user.is_authenticated
            or request.path.startswith(SESSIONLESS_PREFIXES)
        ):
            return self.get_response(request)
        # Who is privileged was decided with the session's time-out policy (at most a
        # minute ago, portal.signin): no query here for a company user.
        privileged = request.session.get(PRIVILEGED)
        if privileged is None:
            privileged = mfa_required(user)
        if not privileged or mfa_satisfied(request):
            return self.get_response(request)
        if not mfa_enrolled(user):
            if not request.path.startswith(ACCOUNT_PREFIXES):
                messages.warning(
                    request,
                    _(
                        "Your role requires two-factor sign-in. Set up an authenticator "
                        "app or a passkey to continue."
                    ),
                )
                return HttpResponseRedirect(reverse("mfa_index"))
            response = self.get_response(request)
            if request.path.startswith(ENROL_PREFIX) and mfa_enrolled(user):
                # Enrolling here proves the new authenticator in this session
                # (allauth's signal for it comes after the commit: too late to tell).
                request.session[ENROLLED_HERE] = True
            return response
        # Enrolled, but this session never passed the second factor: not even the
        # account pages (it could swap the authenticators), only signing out.
        if request.path == reverse("account_logout"):
            return self.get_response(request)
        logout(request)
        messages.info(request, _("Sign in again with your second factor."))
        return redirect_to_login(request.get_full_path(), reverse("account_login"))


class MFAAdapter(DefaultMFAAdapter):
    """allauth's MFA adapter with the portal's rules."""

    def get_totp_issuer(self) -> str:
        return "Suanli"

    def can_delete_authenticator(self, authenticator: Authenticator) -> bool:
        """A privileged user keeps at least one second factor."""
        if authenticator.type not in SECOND_FACTORS or not mfa_required(authenticator.user):
            return True
        return (
            Authenticator.objects.filter(user_id=authenticator.user_id, type__in=SECOND_FACTORS)
            .exclude(pk=authenticator.pk)
            .exists()
        )


def _ip(request: HttpRequest | None) -> str | None:
    return request.META.get("REMOTE_ADDR") or None if request is not None else None


def on_authenticator_added(
    sender: Any, request: HttpRequest | None, user: User, authenticator: Authenticator, **kw: Any
) -> None:
    audit_record(
        action="user.mfa_added",
        actor=user,
        target=user,
        data={"type": authenticator.type},
        ip=_ip(request),
    )


def on_authenticator_removed(
    sender: Any, request: HttpRequest | None, user: User, authenticator: Authenticator, **kw: Any
) -> None:
    audit_record(
        action="user.mfa_removed",
        actor=user,
        target=user,
        data={"type": authenticator.type},
        ip=_ip(request),
    )


def signals_connect() -> None:
    """From `PortalConfig.ready()`."""
    authenticator_added.connect(on_authenticator_added, dispatch_uid="portal.mfa.added")
    authenticator_removed.connect(on_authenticator_removed, dispatch_uid="portal.mfa.removed")
