"""Signing in: one way in for everyone, and sessions that end (issue #15).

- **One sign-in form.** `/admin/login/` is not Django's admin form, which authenticates
  without allauth's failed-login limits: it sends the visitor to allauth's
  `/accounts/login/?next=…`, where `ACCOUNT_RATE_LIMITS["login_failed"]` counts failures
  by account and by address (settings, "Sign-in, sessions and headers").
- **Sessions by who you are.** Superusers, platform staff, staff of any city and
  data-center operators get `SESSION_STRICT` (30 minutes idle, 12 hours at most);
  everyone else, i.e. company users, `SESSION_DEFAULT` (settings say why).
  `SessionTimeoutMiddleware` enforces both limits from two timestamps kept in the
  session itself, so a forgotten or stolen session ends on time whatever its cookie
  says; the session store's expiry follows the idle limit too.
- **Sign-ins are remembered** (`portal.models.SignIn`): the account's sessions page lists
  the live sessions and recent sign-ins, and signs out everywhere at once.

Who counts as privileged is partly a later app's business (data-center operators are
compute's): apps add a test with `privileged_check_register` from their
`AppConfig.ready()`, as with `portal.links`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from allauth.account.internal.flows.login import (
    get_authentication_records,
    record_authentication,
)
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from portal.audit import audit_record
from portal.http import SignedInRequest
from portal.models import CityMembership, SignIn, User

# Kept in the session: when it signed in and when it was last seen (seconds since the
# epoch), and the limits it runs under ([idle, absolute] seconds).
STARTED = "_suanli_signed_in_at"
SEEN = "_suanli_seen_at"
POLICY = "_suanli_session_policy"
# Whether the user counted as privileged when the policy was last decided (two-factor
# sign-in reads it: portal.twofactor).
PRIVILEGED = "_suanli_privileged"
# The idle clock is written back at most once a minute, not on every request (each
# write is a database write); a session may so end up to a minute early.
SEEN_EVERY = 60


# --- who is privileged ----------------------------------------------------------------

privileged_checks: list[Callable[[User], bool]] = []


def privileged_check_register(check: Callable[[User], bool]) -> None:
    """Add a test "does this user hold power over money or other people's data?"
    (from a later app's `AppConfig.ready()`)."""
    if check not in privileged_checks:
        privileged_checks.append(check)


def is_privileged(user: User) -> bool:
    """Superusers, platform staff, staff of any city, and whom later apps add
    (compute: the operators of a data center)."""
    if user.is_superuser or user.is_staff:
        return True
    if CityMembership.objects.filter(user=user).exists():
        return True
    return any(check(user) for check in privileged_checks)


@dataclass(frozen=True)
class SessionPolicy:
    idle: int  # seconds without a request
    absolute: int  # seconds since signing in
    privileged: bool = False


def session_policy(user: User) -> SessionPolicy:
    privileged = is_privileged(user)
    idle, absolute = settings.SESSION_STRICT if privileged else settings.SESSION_DEFAULT
    return SessionPolicy(idle, absolute, privileged)


# --- /admin/login/ --------------------------------------------------------------------


def admin_login(request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
    """Stands in for `AdminSite.login`: the admin has no sign-in form of its own.

    A visitor who is not signed in goes to allauth's form (with its failed-login limits)
    and comes back to the admin; one signed in without access to the admin gets 403
    rather than a loop between the two sign-in pages."""
    target = request.GET.get("next") or reverse("admin:index")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("admin:index")
    if not request.user.is_authenticated:
        return redirect_to_login(target, reverse("account_login"))
    if not (request.user.is_active and request.user.is_staff):
        raise PermissionDenied
    return HttpResponseRedirect(target)


# --- the session's clocks -------------------------------------------------------------


def _duration(seconds: int) -> str:
    if seconds % 86400 == 0:
        days = seconds // 86400
        return ngettext("%(n)s day", "%(n)s days", days) % {"n": days}
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return ngettext("%(n)s hour", "%(n)s hours", hours) % {"n": hours}
    minutes = max(1, seconds // 60)
    return ngettext("%(n)s minute", "%(n)s minutes", minutes) % {"n": minutes}


def session_stamp(session: Any, user: User, now: float | None = None) -> None:
    """Start a session's clocks under the user's policy."""
    now = time.time() if now is None else now
    policy = session_policy(user)
    session[STARTED] = session[SEEN] = now
    session[POLICY] = [policy.idle, policy.absolute]
    session[PRIVILEGED] = policy.privileged
    session.set_expiry(policy.idle)


class SessionTimeoutMiddleware:
    """Sign out a session idle for longer than its policy allows, or older than its
    absolute limit. After `AuthenticationMiddleware`.

    The policy is decided at sign-in and again whenever the idle clock is written (at
    most once a minute), so a company user given a staff role moves to the strict
    limits within a minute, counted from when they signed in."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            ended = self._check(request, user)
            if ended is not None:
                return ended
        return self.get_response(request)

    def _check(self, request: HttpRequest, user: User) -> HttpResponse | None:
        session = request.session
        now = time.time()
        started, seen, policy = session.get(STARTED), session.get(SEEN), session.get(POLICY)
        if started is None or seen is None or not policy:
            # A session from before these limits: its clocks start now.
            session_stamp(session, user, now)
            return None
        idle, absolute = policy
        if now - started > absolute:
            message = _("You were signed out: a session lasts %(time)s at most.") % {
                "time": _duration(absolute)
            }
        elif now - seen > idle:
            message = _("You were signed out after %(time)s without activity.") % {
                "time": _duration(idle)
            }
        else:
            if now - seen >= SEEN_EVERY:
                policy = session_policy(user)
                session[POLICY] = [policy.idle, policy.absolute]
                session[PRIVILEGED] = policy.privileged
                session[SEEN] = now
                # The store forgets the session on time too (and the cookie expires),
                # unless it was meant to end with the browser ("remember me" unticked).
                if not session.get_expire_at_browser_close():
                    left = policy.absolute - (now - started)
                    session.set_expiry(max(1, int(min(policy.idle, left))))
            return None
        logout(request)
        if request.path.startswith("/api/"):
            return None  # the API authenticates by key, not by session
        messages.info(request, message)
        return redirect_to_login(request.get_full_path(), reverse("account_login"))


# --- sign-ins and sessions ------------------------------------------------------------


def on_user_logged_in(sender: Any, request: HttpRequest | None, user: User, **kwargs: Any) -> None:
    """Start the session's clocks and remember the sign-in. `user_logged_in` is sent by
    `django.contrib.auth.login` once the session has its new key."""
    if request is None or not hasattr(request, "session"):
        return
    session_stamp(request.session, user)
    # Signing in is a fresh authentication: sensitive actions (portal.reauth) and
    # allauth's own (enrolling a second factor right after the password step) need not
    # ask for it again within the re-authentication timeout. Recorded the way allauth
    # records a re-authentication, by the method the sign-in ended with.
    records = get_authentication_records(request, user)
    method = records[-1].get("method", "password") if records else "password"
    record_authentication(request, user, method=method, reauthenticated=True, sign_in=True)
    if not request.session.session_key:
        request.session.save()
    SignIn.objects.create(
        user=user,
        session_key=request.session.session_key or "",
        ip=request.META.get("REMOTE_ADDR") or None,
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:300],
    )


def on_user_logged_out(
    sender: Any, request: HttpRequest | None, user: User | None, **kwargs: Any
) -> None:
    key = getattr(getattr(request, "session", None), "session_key", None)
    if user is not None and key:
        SignIn.objects.filter(user=user, session_key=key, ended_at__isnull=True).update(
            ended_at=timezone.now()
        )


def signals_connect() -> None:
    """From `PortalConfig.ready()`."""
    user_logged_in.connect(on_user_logged_in, dispatch_uid="portal.signin.logged_in")
    user_logged_out.connect(on_user_logged_out, dispatch_uid="portal.signin.logged_out")


def _session_store() -> type:
    return import_module(settings.SESSION_ENGINE).SessionStore


def session_list(*, user: User) -> list[SignIn]:
    """The user's sign-ins whose session is still alive, newest first. One the store no
    longer holds (signed out, expired) is marked ended on the way."""
    store = _session_store()
    live, gone = [], []
    for sign_in in SignIn.objects.filter(user=user, ended_at__isnull=True).order_by("-created_at"):
        if sign_in.session_key and store().exists(sign_in.session_key):
            live.append(sign_in)
        else:
            gone.append(sign_in.pk)
    if gone:
        SignIn.objects.filter(pk__in=gone).update(ended_at=timezone.now())
    return live


def sign_in_list(*, user: User, limit: int = 20) -> list[SignIn]:
    """The user's most recent sign-ins, newest first."""
    return list(SignIn.objects.filter(user=user).order_by("-created_at")[:limit])


def sessions_end_all(*, actor: User, ip: str | None = None) -> int:
    """Sign the actor out everywhere, this session too; return how many sessions ended.

    Every session that carries a signed-in user began with `login`, which recorded its
    sign-in, so the sign-ins name them all."""
    store = _session_store()
    with transaction.atomic():
        open_ = SignIn.objects.select_for_update().filter(user=actor, ended_at__isnull=True)
        keys = [key for key in open_.values_list("session_key", flat=True) if key]
        ended = 0
        for key in keys:
            if store().exists(key):
                store(key).delete()
                ended += 1
        open_.update(ended_at=timezone.now())
        audit_record(
            action="user.sign_out_everywhere",
            actor=actor,
            target=actor,
            data={"sessions": ended},
            ip=ip,
        )
    return ended


def session_end(*, actor: User, sign_in_id: int, ip: str | None = None) -> bool:
    """Sign the actor out of one of their other sessions (a browser left signed in
    elsewhere); False if it is not theirs or no longer alive."""
    store = _session_store()
    with transaction.atomic():
        sign_in = (
            SignIn.objects.select_for_update()
            .filter(user=actor, pk=sign_in_id, ended_at__isnull=True)
            .first()
        )
        if sign_in is None:
            return False
        alive = bool(sign_in.session_key) and store().exists(sign_in.session_key)
        if alive:
            store(sign_in.session_key).delete()
        sign_in.ended_at = timezone.now()
        sign_in.save(update_fields=["ended_at"])
        if alive:
            audit_record(
                action="user.sign_out_session",
                actor=actor,
                target=actor,
                data={"sign_in": sign_in.pk},
                ip=ip,
            )
    return alive


# --- the sessions page ------------------------------------------------------------------


@login_required
def sessions_page(request: SignedInRequest) -> HttpResponse:
    """/accounts/sessions/: where the user is signed in, recent sign-ins, and a button
    that signs out everywhere."""
    if request.method == "POST" and request.POST.get("end", "").isdigit():
        # Another session only: this one ends with "sign out" (or everywhere).
        chosen = int(request.POST["end"])
        current = SignIn.objects.filter(
            user=request.user, session_key=request.session.session_key
        ).values_list("pk", flat=True)
        ip = request.META.get("REMOTE_ADDR")
        if chosen not in current and session_end(actor=request.user, sign_in_id=chosen, ip=ip):
            messages.success(request, _("That session was signed out."))
        return HttpResponseRedirect(reverse("portal:sessions"))
    if request.method == "POST":
        ended = sessions_end_all(actor=request.user, ip=request.META.get("REMOTE_ADDR"))
        logout(request)
        messages.success(
            request,
            ngettext(
                "You were signed out of %(n)s session.",
                "You were signed out of %(n)s sessions.",
                ended,
            )
            % {"n": ended},
        )
        return HttpResponseRedirect(reverse("account_login"))
    return render(
        request,
        "portal/sessions.html",
        {
            "sessions": session_list(user=request.user),
            "sign_ins": sign_in_list(user=request.user),
            "current_key": request.session.session_key,
            "idle": _duration(session_policy(request.user).idle),
            "absolute": _duration(session_policy(request.user).absolute),
            "second_factor": Authenticator.objects.filter(
                user=request.user,
                type__in=[Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN],
            ).exists(),
        },
    )
