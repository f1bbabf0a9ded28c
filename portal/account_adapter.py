"""allauth's adapter, for one thing: a person who signs up from a page (a program's
`…/programs/<slug>/` with `?next=`) comes back to it after verifying their address,
even when they open the e-mailed link in another browser, where the sign-up's session
(and allauth's memory of `next`) is not. The link carries the sign-in page with that
`next`, so the confirmation leads to signing in and signing in to the page."""

from __future__ import annotations

from urllib.parse import urlencode

from allauth.account.adapter import DefaultAccountAdapter
from django.http import HttpRequest
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme


def safe_next(request: HttpRequest | None) -> str:
    """The request's `next` if it is a path on this site, else ""."""
    if request is None:
        return ""
    value = request.POST.get("next") or request.GET.get("next") or ""
    if (
        not value.startswith("/")
        or value.startswith("//")
        or not url_has_allowed_host_and_scheme(value, allowed_hosts=None)
    ):
        return ""
    return value


class AccountAdapter(DefaultAccountAdapter):
    def get_email_confirmation_url(self, request: HttpRequest, emailconfirmation) -> str:
        url = super().get_email_confirmation_url(request, emailconfirmation)
        back = safe_next(request)
        if not back:
            return url
        sign_in = f"{reverse('account_login')}?{urlencode({'next': back})}"
        return f"{url}?{urlencode({'next': sign_in})}"
