"""The API's plumbing: bearer-key authentication, per-data-center throttling and the
failed-authentication limit per address (docs/rate-limits.md), the error body of api.md
for every error, and its pagination shape."""

from __future__ import annotations

import binascii
import re
from base64 import b64decode
from dataclasses import dataclass
from typing import Any
from urllib import parse

from django.conf import settings
from django.core.exceptions import (
    FieldDoesNotExist,
    PermissionDenied,
    RequestDataTooBig,
    ValidationError,
)
from django.db import OperationalError, connection
from django.db.models.constants import LOOKUP_SEP
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle
from rest_framework.views import exception_handler as drf_exception_handler

from compute.models import ApiKey, DataCenter
from compute.services import ApiKeyExpired, api_key_authenticate
from portal import ratelimit
from portal.errors import DomainError, error_body

_DIGITS = re.compile(r"\A[0-9]{1,9}\Z")
_INTEGER = re.compile(r"\A-?[0-9]{1,19}\Z")

STATUS_OF_CODE = {
    "invalid": 400,
    "unauthenticated": 401,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,
    "too_large": 413,
    "unsupported_media_type": 415,
    "throttled": 429,
    "unavailable": 503,
}


@dataclass(frozen=True)
class DataCenterPrincipal:
    """`request.user` of an API call: the data center behind the key."""

    data_center: DataCenter
    key: ApiKey
    is_authenticated: bool = True
    is_anonymous: bool = False

    @property
    def pk(self) -> int:
        return self.data_center.pk


def auth_failure_limiter() -> ratelimit.Limiter | None:
    rate = ratelimit.Rate.parse(getattr(settings, "API_AUTH_FAILURE_LIMIT", "20/min"))
    return rate and ratelimit.Limiter("auth-failure", rate)  # type: ignore[return-value]


class BearerKeyAuthentication(BaseAuthentication):
    """The data center behind `Authorization: Bearer <key>`.

    An address that failed too often (API_AUTH_FAILURE_LIMIT) gets 429 before its key
    is looked at, whatever the key: guessing costs the guesser, not the database."""

    def authenticate(self, request):
        limiter = auth_failure_limiter()
        address = ratelimit.address_of(request)
        if limiter is not None:
            blocked = limiter.peek(address)
            if not blocked.allowed:
                raise exceptions.Throttled(wait=blocked.retry_after)
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _sep, raw = header.partition(" ")
        key = None
        if scheme.lower() == "bearer" and raw.strip():
            try:
                key = api_key_authenticate(raw.strip())
            except ApiKeyExpired as expired:
                if limiter is not None:
                    limiter.count(address)
                when = timezone.localtime(expired.key.expires_at).strftime("%Y-%m-%d %H:%M")
                raise exceptions.AuthenticationFailed(
                    _(
                        "This API key expired on %(when)s (Asia/Shanghai); issue a new one "
                        "in the data center's console."
                    )
                    % {"when": when}
                ) from None
        if key is None:
            if limiter is not None:
                limiter.count(address)
            if scheme.lower() != "bearer" or not raw.strip():
                raise exceptions.AuthenticationFailed(_("Use 'Authorization: Bearer <key>'."))
            raise exceptions.AuthenticationFailed(_("Unknown or revoked API key."))
        return DataCenterPrincipal(key.data_center, key), key

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class BearerKeyScheme(OpenApiAuthenticationExtension):
    target_class = "compute.api.base.BearerKeyAuthentication"
    name = "bearerKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "A data center's API key."}


class IsDataCenter(BasePermission):
    def has_permission(self, request, view) -> bool:
        if not isinstance(request.user, DataCenterPrincipal):
            raise exceptions.NotAuthenticated(_("An API key is required."))
        return True


class DataCenterThrottle(BaseThrottle):
    """Requests per data center (all its keys together) at the `datacenter` rate
    (API_RATE_LIMIT), counted atomically in Redis (`portal.ratelimit`, GCRA). Fails
    open when Redis is unreachable."""

    scope = "datacenter"

    # Read at request time: DRF's SimpleRateThrottle froze the rates at import, so
    # overriding settings changed nothing. Still a class attribute tests can patch.
    @property
    def THROTTLE_RATES(self) -> dict:
        return api_settings.DEFAULT_THROTTLE_RATES

    def __init__(self) -> None:
        self.retry_after: float | None = None

    def allow_request(self, request, view) -> bool:
        if not isinstance(request.user, DataCenterPrincipal):
            return True  # the permission has refused it already
        rate = ratelimit.Rate.parse(self.THROTTLE_RATES.get(self.scope))
        if rate is None:
            return True
        decision = ratelimit.Limiter("dc", rate).hit(str(request.user.data_center.pk))
        self.retry_after = decision.retry_after
        return decision.allowed

    def wait(self) -> float | None:
        return self.retry_after


class ApiPagination(CursorPagination):
    """`{"results": [...], "next": url | null}`, cursor-based so pages stay stable while
    records keep arriving."""

    page_size = 100
    page_size_query_param = "limit"
    max_page_size = 1000
    ordering = "-id"

    def paginate_queryset(self, queryset, request, view=None):
        self.model = queryset.model
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request) -> Cursor | None:
        """DRF's cursor, read strictly: a cursor is opaque, so anything but one this API
        could have written — not base64, not numbers, a position the ordering field
        cannot hold — is the 404 `not_found` docs/api.md promises for an invalid cursor
        (DRF gave it for some and let others reach the database: a 500)."""
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded is None:
            return None
        try:
            text = b64decode(encoded.encode("ascii"), validate=True).decode("ascii")
            tokens = parse.parse_qs(text, keep_blank_values=True, strict_parsing=bool(text))
            offset = tokens.get("o", ["0"])[0]
            reverse = tokens.get("r", ["0"])[0]
            position = tokens.get("p", [None])[0]
            if not _DIGITS.match(offset) or int(offset) > self.offset_cutoff:
                raise ValueError(offset)
            if reverse not in ("0", "1"):
                raise ValueError(reverse)
            if position is not None:
                self._check_position(position)
        except (ValueError, ValidationError, binascii.Error) as exc:
            raise exceptions.NotFound(self.invalid_cursor_message) from exc
        return Cursor(offset=int(offset), reverse=reverse == "1", position=position)  # type: ignore[arg-type]

    def _check_position(self, position: str) -> None:
        """Raise ValueError unless the first ordering field can hold `position`."""
        if "\x00" in position:
            raise ValueError("NUL")
        path = self.ordering[0].lstrip("-")
        model, field = self.model, None
        try:
            for part in path.split(LOOKUP_SEP):
                field = model._meta.get_field(part)
                model = field.related_model
        except FieldDoesNotExist as exc:
            # An ordering on an annotation: refused rather than risk a 500 (no list uses one).
            raise ValueError(path) from exc
        field = getattr(field, "target_field", field)
        internal_type = field.get_internal_type()  # type: ignore[union-attr]
        if "Integer" in internal_type or internal_type.endswith("AutoField"):
            # int() would also take "1_000", " 1" and "١".
            if not _INTEGER.match(position):
                raise ValueError(position)
            low, high = connection.ops.integer_field_range(internal_type)
            if not low <= int(position) <= high:
                raise ValueError(position)
        else:
            field.to_python(position)  # type: ignore[union-attr]

    def get_paginated_response(self, data):
        return Response({"results": data, "next": self.get_next_link()})

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["results", "next"],
            "properties": {
                "results": schema,
                "next": {"type": "string", "format": "uri", "nullable": True},
            },
        }


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested validation errors as api.md's flat `fields` map (`records.0.amount`)."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors" and prefix:
                name = prefix
            out.update(_flatten(value, name))
    elif isinstance(detail, list):
        if all(not isinstance(v, dict | list) for v in detail):
            out[prefix or "body"] = [str(v) for v in detail]
        else:
            for i, value in enumerate(detail):
                out.update(_flatten(value, f"{prefix}.{i}" if prefix else str(i)))
    else:
        out[prefix or "body"] = [str(detail)]
    return out


def api_exception_handler(exc, context):
    """Every API error as `{"error": {"code", "message", "fields"?}}`."""
    if isinstance(exc, DomainError):
        return Response(
            error_body(exc.code, exc.message, exc.fields), status=STATUS_OF_CODE.get(exc.code, 400)
        )
    if isinstance(exc, OperationalError):
        # The database went away mid-request (a restart, a failover): nothing was kept,
        # and the same request sent again will do (batches are idempotent by key).
        response = Response(
            error_body(
                "unavailable", _("The service is briefly unavailable; send the request again.")
            ),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
        response["Retry-After"] = "5"
        return response
    if isinstance(exc, RequestDataTooBig):
        return Response(
            error_body("too_large", _("The body is larger than 10 MB.")),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        body = error_body("invalid", _("Please correct the fields listed."), _flatten(exc.detail))
    elif isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        response.status_code = 401
        body = error_body("unauthenticated", exc.detail)
    elif isinstance(exc, exceptions.Throttled):
        body = error_body(
            "throttled",
            _("Too many requests. Retry after %(s)s seconds.") % {"s": exc.wait and int(exc.wait)},
        )
    else:
        code = {
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
            413: "too_large",
            415: "unsupported_media_type",
            406: "not_acceptable",
        }.get(response.status_code, "invalid")
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        body = error_body(code, detail)
    response.data = body
    return response
