"""Security headers on every response (issue #15): a Content-Security-Policy that allows
no inline script or style, and a Permissions-Policy that turns off the browser features
the portal never uses. Referrer-Policy comes from Django's SecurityMiddleware
(`SECURE_REFERRER_POLICY`).

A small middleware rather than django-csp: one fixed policy, and one page that needs
another (`csp_override`, the API's Swagger UI), are all there is to say.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse


class SecurityHeadersMiddleware:
    """First in MIDDLEWARE, so that the answers of the other middleware (a refused body,
    a redirect to sign in) carry the headers too. A view's `csp_override` wins."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = getattr(response, "csp_override", None) or settings.CONTENT_SECURITY_POLICY
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        if "Permissions-Policy" not in response:
            response["Permissions-Policy"] = settings.PERMISSIONS_POLICY
        return response


def csp_override(policy: Callable[[], str] | str) -> Callable:
    """Serve a view under another policy (a string, or a function of none returning
    one, read at each request)."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            response = view(request, *args, **kwargs)
            response.csp_override = policy() if callable(policy) else policy  # type: ignore[attr-defined]
            return response

        return wrapped

    return decorate


def policy_allowing(url: str) -> str:
    """The site's policy, with scripts, styles and images also from `url`'s origin (none
    added for a path on this site)."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return settings.CONTENT_SECURITY_POLICY
    origin = f"{parts.scheme}://{parts.netloc}"
    directives = []
    for directive in settings.CONTENT_SECURITY_POLICY.split(";"):
        name = directive.split()[0] if directive.strip() else ""
        if name in ("script-src", "style-src", "img-src"):
            directive = f"{directive.rstrip()} {origin}"
        directives.append(directive.strip())
    return "; ".join(d for d in directives if d)
