from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from portal.tenancy import city_for_slug


class TenancyMiddleware:
    """Resolve `/<city_slug>/…` to `request.city` before the view runs.

    Every URL pattern under a city carries the `city_slug` keyword; an unknown or
    inactive city is a 404 before any view code sees the request.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.city = None  # type: ignore[attr-defined]
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view: Callable, args: tuple, kwargs: dict[str, Any]
    ) -> None:
        slug = kwargs.get("city_slug")
        if slug is not None:
            request.city = city_for_slug(slug)  # type: ignore[attr-defined]


class UserLanguageMiddleware:
    """Use a signed-in user's preferred language unless they chose one in this browser.

    Runs before LocaleMiddleware, which reads the language cookie we set on the request.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        cookie = settings.LANGUAGE_COOKIE_NAME
        if (
            user is not None
            and user.is_authenticated
            and cookie not in request.COOKIES
            and user.preferred_language
        ):
            request.COOKIES[cookie] = user.preferred_language
        return self.get_response(request)
