"""Bounds on what any client may send, checked in one place so no view has to remember.

PostgreSQL cannot store a NUL character in text, and UTF-8 cannot encode an unpaired
surrogate (which JSON's `\\ud800` escapes produce): either reaching a query raises deep
inside a view and answers 500. `InputGuardMiddleware` refuses them in the path, query,
cookies, headers and form fields; `json_loads_bounded` in JSON bodies and settings
fields, together with non-finite numbers and excessive size or depth.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader
from django.utils.translation import gettext as _

from portal.errors import error_body


def text_poisoned(text: str) -> bool:
    """Whether `text` holds a character no column can store (NUL, a lone surrogate)."""
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r"[\[\]{}]")


_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class InputRefused(ValueError):
    """Raised by `json_loads_bounded`; its message is for the person who sent it."""


def json_loads_bounded(
    text: str | bytes, *, max_chars: int = 100_000, max_depth: int = 8, exact: bool = False
) -> Any:
    """`json.loads` that refuses what the database or Python cannot hold: NaN and
    ±Infinity, numbers beyond a double (`1e999`), NUL characters and unpaired
    surrogates in any string, a text longer than `max_chars`, nesting deeper than
    `max_depth` (5,000 levels would otherwise raise RecursionError). `exact` reads
    numbers with a fraction as `Decimal`."""
    if len(text) > max_chars:
        raise InputRefused(_("At most %(n)s characters.") % {"n": max_chars})
    # Count nesting before parsing: the parser itself recurses once per level.
    if isinstance(text, bytes):
        try:
            text = text.decode()
        except UnicodeDecodeError as error:
            raise InputRefused(_("The text is not valid UTF-8.")) from error
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    if deepest > max_depth:
        raise InputRefused(_("Nested at most %(n)s levels deep.") % {"n": max_depth})

    def refuse_constant(name: str) -> None:
        raise InputRefused(_("%(value)s is not a number that can be stored.") % {"value": name})

    def finite_float(literal: str) -> float | Decimal:  # type: ignore[return]
        value = Decimal(literal) if exact else float(literal)
        if exact or math.isfinite(value):
            return value
        refuse_constant(literal)

    try:
        data = json.loads(text, parse_constant=refuse_constant, parse_float=finite_float)
    except InputRefused:
        raise
    except (ValueError, RecursionError) as error:
        raise InputRefused(_("This is not valid JSON.")) from error
    _refuse_poisoned_strings(data)
    return data


def _refuse_poisoned_strings(data: Any) -> None:
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if text_poisoned(value):
                raise InputRefused(_("Text may not contain NUL characters or unpaired surrogates."))
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def _refused(request: HttpRequest, status: int, message: str) -> HttpResponse:
    code = "too_large" if status == 413 else "invalid"
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(code, message), status=status)
    # No context processors: the session or user may be what carries the bad input.
    html = loader.get_template("400.html").render({"status": status, "message": message})
    return HttpResponse(html, status=status)


class InputGuardMiddleware:
    """First in the chain: a body larger than the largest upload is refused by its
    `Content-Length` before anything reads it, and NUL characters (or unpaired
    surrogates) anywhere in the request line, headers, cookies or form fields answer
    400 with a message instead of a 500 from the database. The reverse proxy should
    refuse bodies over `MAX_REQUEST_BYTES` too (docs/operations.md)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        length = request.META.get("CONTENT_LENGTH") or "0"
        if not length.isascii() or not length.isdigit():
            return _refused(request, 400, _("The Content-Length header is not a number."))
        limit = settings.MAX_REQUEST_BYTES
        if int(length) > limit:
            return _refused(
                request,
                413,
                _("The request is larger than %(mb)s MB.") % {"mb": limit // (1024 * 1024)},
            )
        if self._poisoned(request):
            return _refused(
                request,
                400,
                _("The request contains a NUL character or an invalid character; remove it."),
            )
        return self.get_response(request)

    @staticmethod
    def _poisoned(request: HttpRequest) -> bool:
        if text_poisoned(request.path_info):
            return True
        for key, value in request.META.items():
            if key.startswith("HTTP_") and isinstance(value, str) and "\x00" in value:
                return True
        for key, value in request.COOKIES.items():
            if text_poisoned(key) or text_poisoned(value):
                return True
        for key, values in request.GET.lists():
            if text_poisoned(key) or any(text_poisoned(v) for v in values):
                return True
        # Form posts only: the API's JSON bodies are checked by its parser, and reading
        # a JSON body here would leave nothing for it.
        if (
            request.method == "POST"
            and not request.path.startswith("/api/")
            and request.content_type
            in (
                "application/x-www-form-urlencoded",
                "multipart/form-data",
            )
        ):
            for key, values in request.POST.lists():
                if text_poisoned(key) or any(text_poisoned(v) for v in values):
                    return True
            for upload in request.FILES.values():
                if text_poisoned(upload.name or ""):  # type: ignore[union-attr]
                    return True
        return False
