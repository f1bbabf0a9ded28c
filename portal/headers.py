"""Security headers on every response (issue #15): a Content-Security-Policy that allows
no inline script or style, and a Permissions-Policy that turns off the browser features
the portal never uses. Referrer-Policy comes from Django's SecurityMiddleware
(`SECURE_REFERRER_POLICY`).

A small middleware rather than django-csp: one fixed policy for every page is all there
is to say. The API's Swagger UI comes from drf-spectacular-sidecar under /static/, so it
needs no exception either.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


class SecurityHeadersMiddleware:
    """First in MIDDLEWARE, so that the answers of the other middleware (a refused body,
    a redirect to sign in) carry the headers too."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = settings.CONTENT_SECURITY_POLICY
        if "Permissions-Policy" not in response:
            response["Permissions-Policy"] = settings.PERMISSIONS_POLICY
        return response
