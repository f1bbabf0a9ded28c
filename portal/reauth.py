"""Re-authentication before sensitive actions (issue #15): deciding on an application,
revoking or suspending a voucher, issuing or revoking an API key, granting a role,
issuing a statement or marking it paid, changing a program's budget or rates.

The user must have authenticated within `ACCOUNT_REAUTHENTICATION_TIMEOUT` (15 minutes):
signed in (password and second factor), or confirmed with allauth's re-authentication
(password, authenticator code or passkey). A sign-in counts because it is the same
proof, a moment ago; `portal.signin` records it as such, so allauth's own sensitive
pages (adding or removing an authenticator) follow the same clock.

Which requests are sensitive is said in one registry, `sensitive_register(view name,
when)`, filled by each app from its `AppConfig.ready()` (a later app's views are its
own business, as with `portal.links`). `ReauthenticationMiddleware` checks it before
the view runs. Without a recent authentication the request goes to allauth's
re-authentication page and comes back: the middleware keeps a POST's fields (not its
files; no sensitive action uploads any) and carries it out once the user has confirmed,
and the page says so, so nothing typed is lost and nothing is done unconfirmed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from allauth.account.adapter import get_adapter
from allauth.account.internal.flows.reauthentication import did_recently_reauthenticate
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.utils.datastructures import MultiValueDict
from django.utils.translation import gettext as _

# A POST kept while its user confirms: in the session under STASH, for so long.
STASH = "_suanli_reauth_post"
STASH_SECONDS = 10 * 60

# view name ("app:name") -> tests "is this request sensitive?"
Predicate = Callable[[HttpRequest, dict[str, Any]], bool]
sensitive_views: dict[str, list[Predicate]] = {}


def post_only(request: HttpRequest, kwargs: dict[str, Any]) -> bool:
    return request.method == "POST"


def post_action_in(*actions: str, kwarg: str = "action") -> Predicate:
    """A POST whose URL's `kwarg` is one of `actions`."""

    def check(request: HttpRequest, kwargs: dict[str, Any]) -> bool:
        return request.method == "POST" and kwargs.get(kwarg) in actions

    return check


def post_field_in(field: str, *values: str) -> Predicate:
    """A POST whose form field `field` is one of `values`."""

    def check(request: HttpRequest, kwargs: dict[str, Any]) -> bool:
        return request.method == "POST" and request.POST.get(field) in values

    return check


def sensitive_register(view_name: str, when: Predicate = post_only) -> None:
    """Require a recent authentication for requests to `view_name` that `when` holds for."""
    predicates = sensitive_views.setdefault(view_name, [])
    if when not in predicates:
        predicates.append(when)


def is_sensitive(request: HttpRequest, view_name: str, kwargs: dict[str, Any]) -> bool:
    """Does a predicate registered for the view, or for its whole namespace
    ("admin:*"), hold for this request?"""
    namespace = view_name.rpartition(":")[0]
    predicates = [*sensitive_views.get(view_name, ()), *sensitive_views.get(f"{namespace}:*", ())]
    return any(check(request, kwargs) for check in predicates)


def _admin_change(request: HttpRequest, kwargs: dict[str, Any]) -> bool:
    match = request.resolver_match
    return request.method == "POST" and (match is None or match.url_name != "logout")


def portal_sensitive_register() -> None:
    """The portal's own sensitive requests (from `PortalConfig.ready()`): granting a
    role (directly or by invitation) and revoking one, and every change in the admin,
    where superusers change users, roles and programs."""
    sensitive_register("portal:staff_members")
    sensitive_register("portal:staff_member_revoke", post_field_in("confirm", "yes"))
    sensitive_register("admin:*", _admin_change)


def recently_authenticated(request: HttpRequest) -> bool:
    """Has the signed-in user authenticated within the re-authentication timeout?"""
    return did_recently_reauthenticate(request)


class ReauthenticationMiddleware:
    """After the CSRF and tenancy middleware (predicates may read `request.city`; a
    kept POST has passed the CSRF check). Only signed-in users are asked: for anyone
    else the view answers as it always did (sign in, 404).

    A POST that must wait is kept in the session (its fields, the path, the user, when)
    and the user sent to confirm with `?next=` its path; allauth sends them back there
    with a GET, which then runs as the kept POST through the whole middleware stack
    (allauth's own replay would skip it: no city, no tenancy). Kept for
    `STASH_SECONDS`, once, for that user and path only; any other page drops it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Callable, args: tuple, kwargs: dict[str, Any]
    ) -> HttpResponse | None:
        match = request.resolver_match
        if match is None or not request.user.is_authenticated:
            return None
        self._resume(request)
        if not is_sensitive(request, match.view_name, kwargs):
            return None
        if recently_authenticated(request):
            return None
        methods = get_adapter(request).get_reauthentication_methods(request.user)
        if not methods:
            raise PermissionDenied
        path = request.get_full_path()
        if request.method == "POST":
            request.session[STASH] = {
                "path": path,
                "post": request.POST.urlencode(),
                "user": str(request.user.pk),
                "at": time.time(),
            }
            messages.info(
                request,
                _(
                    "Confirm it is you to continue. What you submitted is kept and "
                    "carried out once you have confirmed."
                ),
            )
        else:
            messages.info(request, _("Confirm it is you to continue."))
        return HttpResponseRedirect(f"{methods[0]['url']}?{urlencode({'next': path})}")

    def _resume(self, request: HttpRequest) -> None:
        """Turn the GET that comes back from confirming into the POST that was kept."""
        stash = request.session.get(STASH)
        if not stash or request.path.startswith(("/accounts/", "/static/")):
            return
        del request.session[STASH]
        if (
            request.method == "GET"
            and stash["path"] == request.get_full_path()
            and stash["user"] == str(request.user.pk)
            and time.time() - stash["at"] < STASH_SECONDS
            and recently_authenticated(request)
        ):
            request.method = "POST"
            request._post = QueryDict(stash["post"])  # type: ignore[attr-defined]
            request._files = MultiValueDict()  # type: ignore[attr-defined]
