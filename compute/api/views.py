"""The data-center API, version 1 (docs: api.md). One view per operation; each parses
its input, calls one service or selector, and renders the output shape."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from compute import selectors, services
from compute.api import serializers as s
from compute.api.base import (
    ApiPagination,
    BearerKeyAuthentication,
    DataCenterThrottle,
    IsDataCenter,
)
from compute.ingest import MAX_BODY_BYTES, BatchBody, usage_batch_receive
from portal.audit import SYSTEM
from portal.inputs import InputRefused, json_loads_bounded

ERRORS = {
    400: OpenApiResponse(s.ErrorBody, description="invalid"),
    401: OpenApiResponse(s.ErrorBody, description="unauthenticated"),
    404: OpenApiResponse(s.ErrorBody, description="not_found"),
    405: OpenApiResponse(s.ErrorBody, description="method_not_allowed"),
    429: OpenApiResponse(s.ErrorBody, description="throttled"),
}
POST_ERRORS = {
    **ERRORS,
    409: OpenApiResponse(s.ErrorBody, description="conflict"),
    413: OpenApiResponse(s.ErrorBody, description="too_large"),
    415: OpenApiResponse(s.ErrorBody, description="unsupported_media_type"),
}


class TooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The body is larger than 10 MB."
    default_code = "too_large"


class BoundedJSONParser(JSONParser):
    """JSON with a hard size limit (whatever the Content-Length says) and exact
    decimals: numbers with a fraction become `Decimal`, never float."""

    def parse(self, stream, media_type=None, parser_context=None):
        data = stream.read(MAX_BODY_BYTES + 1) if stream is not None else b""
        if len(data) > MAX_BODY_BYTES:
            raise TooLarge(_("The body is larger than 10 MB."))
        try:
            return self.load(data)
        except InputRefused as exc:
            raise ParseError(str(exc)) from exc
        except (ValueError, RecursionError) as exc:
            raise ParseError(_("The body is not valid JSON.")) from exc

    def load(self, data: bytes):
        # No NaN, NUL or unpaired surrogate reaches a serializer (portal.inputs).
        return json_loads_bounded(data, max_chars=MAX_BODY_BYTES, max_depth=16, exact=True)


class BatchBodyParser(BoundedJSONParser):
    """A usage batch: the bytes as received, parsed once for the envelope (orjson), so
    the body is stored as sent and the worker reads the numbers exactly."""

    def load(self, data: bytes) -> BatchBody:
        return BatchBody.parse(data)


class DataCenterView(APIView):
    authentication_classes = [BearerKeyAuthentication]
    permission_classes = [IsDataCenter]
    throttle_classes = [DataCenterThrottle]
    parser_classes = [BoundedJSONParser]

    @property
    def data_center(self):
        return self.request.user.data_center

    def initial(self, request, *args, **kwargs):
        # Refuse an oversized body before anything reads it.
        length = request.META.get("CONTENT_LENGTH") or "0"
        if length.isdigit() and int(length) > MAX_BODY_BYTES:
            raise TooLarge(_("The body is larger than 10 MB."))
        super().initial(request, *args, **kwargs)

    def body_object(self, request) -> dict:
        data = request.data
        if not isinstance(data, dict):
            raise ParseError(_("The body must be a JSON object."))
        return data

    def paginate(self, request, queryset, serializer_class, ordering: str = "-id"):
        paginator = ApiPagination()
        paginator.ordering = ordering
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(serializer_class(page, many=True).data)


def _query(serializer_class, request):
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query.validated_data


class Ping(DataCenterView):
    """Who the key belongs to, and nothing else: a client checks its key and its
    connection with it, and the benchmark (tests/bench) compares the voucher look-up
    with it (the cost of the server, the key and the throttle alone)."""

    @extend_schema(operation_id="ping", responses={200: s.PingOut, **ERRORS})
    def get(self, request):
        return Response({"data_center": self.data_center.slug})


class VoucherDetail(DataCenterView):
    @extend_schema(operation_id="voucher_get", responses={200: s.VoucherOut, **ERRORS})
    def get(self, request, code: str):
        voucher = get_object_or_404(
            selectors.vouchers_visible_to(data_center=self.data_center), code=code
        )
        return Response(s.VoucherOut(voucher).data)


class RedemptionList(DataCenterView):
    @extend_schema(
        operation_id="redemption_list",
        parameters=[s.RedemptionListQuery],
        responses={200: s.RedemptionPage, **ERRORS},
    )
    def get(self, request):
        query = _query(s.RedemptionListQuery, request)
        redemptions = selectors.redemption_list(data_center=self.data_center)
        if "status" in query:
            redemptions = redemptions.filter(status=query["status"])
        if "updated_since" in query:
            redemptions = redemptions.filter(updated_at__gte=query["updated_since"])
        return self.paginate(request, redemptions, s.RedemptionOut)


class RedemptionAccept(DataCenterView):
    @extend_schema(
        operation_id="redemption_accept",
        request=s.AcceptIn,
        responses={200: s.RedemptionOut, **POST_ERRORS},
    )
    def post(self, request, pk: int):
        data = s.AcceptIn(data=self.body_object(request))
        data.is_valid(raise_exception=True)
        redemption = get_object_or_404(
            selectors.redemption_list(data_center=self.data_center), pk=pk
        )
        redemption = services.redemption_accept(
            redemption=redemption,
            data_center=self.data_center,
            contract_ref=data.validated_data.get("contract_ref", ""),
            actor=SYSTEM,  # the data center's key: no person
        )
        return Response(s.RedemptionOut(redemption).data)


class RedemptionReject(DataCenterView):
    @extend_schema(
        operation_id="redemption_reject",
        request=s.ReasonIn,
        responses={200: s.RedemptionOut, **POST_ERRORS},
    )
    def post(self, request, pk: int):
        data = s.ReasonIn(data=self.body_object(request))
        data.is_valid(raise_exception=True)
        redemption = get_object_or_404(
            selectors.redemption_list(data_center=self.data_center), pk=pk
        )
        redemption = services.redemption_reject(
            redemption=redemption,
            data_center=self.data_center,
            reason=data.validated_data["reason"],
            actor=SYSTEM,  # the data center's key: no person
        )
        return Response(s.RedemptionOut(redemption).data)


def _batch_accepted(request, batch) -> dict:
    return {
        "id": batch.pk,
        "status": batch.status,
        "received": batch.received,
        "url": request.build_absolute_uri(reverse("api:batch_detail", args=[batch.pk])),
    }


class BatchCreate(DataCenterView):
    parser_classes = [BatchBodyParser]

    @extend_schema(
        operation_id="usage_batch_create",
        request=s.BatchIn,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                description="Same key and body again: the first batch (200). Another body: 409.",
            )
        ],
        responses={
            202: s.BatchAccepted,
            200: OpenApiResponse(s.BatchAccepted, description="Repeated Idempotency-Key"),
            **POST_ERRORS,
        },
    )
    def post(self, request):
        body = request.data
        if not isinstance(body, BatchBody) or not isinstance(body.data, dict):
            raise ParseError(_("The body must be a JSON object."))
        batch, created = usage_batch_receive(
            data_center=self.data_center,
            body=body,
            idempotency_key=request.headers.get("Idempotency-Key", ""),
        )
        return Response(
            _batch_accepted(request, batch),
            status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK,
        )


class BatchDetail(DataCenterView):
    @extend_schema(operation_id="usage_batch_get", responses={200: s.BatchOut, **ERRORS})
    def get(self, request, pk: int):
        batch = get_object_or_404(selectors.batch_list(data_center=self.data_center), pk=pk)
        # Results are stored in their final shape: no per-record serializer on the way out.
        return Response(
            {
                "id": batch.pk,
                "status": batch.status,
                "received": batch.received,
                "failure_reason": batch.failure_reason,
                "counts": {
                    "accepted": batch.accepted,
                    "duplicate": batch.duplicate,
                    "rejected": batch.rejected,
                },
                "results": batch.results,
            }
        )


class UsageRecordList(DataCenterView):
    @extend_schema(
        operation_id="usage_record_list",
        parameters=[s.UsageRecordListQuery],
        responses={200: s.UsageRecordPage, **ERRORS},
    )
    def get(self, request):
        query = _query(s.UsageRecordListQuery, request)
        records = selectors.usage_record_list(data_center=self.data_center)
        if "voucher" in query:
            records = records.filter(voucher__code=query["voucher"])
        if "status" in query:
            records = records.filter(status=query["status"])
        if "since" in query:
            records = records.filter(created_at__gte=query["since"])
        return self.paginate(request, records, s.UsageRecordOut, ordering="id")


class UsageRecordVoid(DataCenterView):
    @extend_schema(
        operation_id="usage_record_void",
        request=s.ReasonIn,
        responses={200: s.UsageRecordOut, **POST_ERRORS},
    )
    def post(self, request, record_id: str):
        data = s.ReasonIn(data=self.body_object(request))
        data.is_valid(raise_exception=True)
        record = services.usage_record_void(
            data_center=self.data_center, record_id=record_id, reason=data.validated_data["reason"]
        )
        return Response(s.UsageRecordOut(record).data)


class SettlementList(DataCenterView):
    @extend_schema(
        operation_id="settlement_list",
        parameters=[s.SettlementListQuery],
        responses={200: s.SettlementPage, **ERRORS},
    )
    def get(self, request):
        from compute.settlements import parse_period

        query = _query(s.SettlementListQuery, request)
        # Drafts are the city's working copies: data centers see statements once issued.
        settlements = selectors.settlement_list(data_center=self.data_center).exclude(
            status="draft"
        )
        if "period" in query:
            settlements = settlements.filter(period=parse_period(query["period"]))
        return self.paginate(request, settlements, s.SettlementOut)


class SettlementDetail(DataCenterView):
    @extend_schema(operation_id="settlement_get", responses={200: s.SettlementDetailOut, **ERRORS})
    def get(self, request, pk: int):
        settlement = get_object_or_404(
            selectors.settlement_list(data_center=self.data_center)
            .exclude(status="draft")
            .prefetch_related("lines"),
            pk=pk,
        )
        return Response(s.SettlementDetailOut(settlement).data)
