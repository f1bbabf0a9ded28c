"""Signing in: one way in for everyone (issue #15).

`/admin/login/` is not Django's admin form, which authenticates without allauth's
failed-login limits: it sends the visitor to allauth's `/accounts/login/?next=…`, where
`ACCOUNT_RATE_LIMITS["login_failed"]` counts failures by account and by address
(settings, "Sign-in, sessions and headers").
"""

from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme


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
