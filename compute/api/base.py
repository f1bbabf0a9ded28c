"""The API's plumbing: bearer-key authentication, per-data-center throttling, the
error body of api.md for every error, and its pagination shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404
from django.utils.translation import gettext as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import exception_handler as drf_exception_handler

from compute.models import ApiKey, DataCenter
from compute.services import api_key_authenticate
from portal.errors import DomainError, error_body

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


class BearerKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _sep, raw = header.partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            raise exceptions.AuthenticationFailed(_("Use 'Authorization: Bearer <key>'."))
        key = api_key_authenticate(raw.strip())
        if key is None:
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


class DataCenterThrottle(SimpleRateThrottle):
    """Requests per data center (all its keys together), counted in Redis."""

    scope = "datacenter"

    def get_cache_key(self, request, view):
        if isinstance(request.user, DataCenterPrincipal):
            return f"throttle:dc:{request.user.data_center.pk}"
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class ApiPagination(CursorPagination):
    """`{"results": [...], "next": url | null}`, cursor-based so pages stay stable while
    records keep arriving."""

    page_size = 100
    page_size_query_param = "limit"
    max_page_size = 1000
    ordering = "-id"

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
