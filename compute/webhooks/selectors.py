"""Reads of a data center's webhook endpoints and deliveries (each scoped to the data
center: another data center's are a 404)."""

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from compute.models import DataCenter
from compute.webhooks.models import WebhookDelivery, WebhookEndpoint


def webhook_endpoint_list(*, data_center: DataCenter) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(data_center=data_center).order_by("-id")


def webhook_endpoint_get(*, data_center: DataCenter, pk: int) -> WebhookEndpoint:
    """A live endpoint of the data center."""
    return get_object_or_404(
        WebhookEndpoint.objects.filter(data_center=data_center, revoked_at=None), pk=pk
    )


def webhook_delivery_list(*, data_center: DataCenter) -> QuerySet[WebhookDelivery]:
    return (
        WebhookDelivery.objects.filter(endpoint__data_center=data_center)
        .select_related("endpoint")
        .order_by("-id")
    )


def webhook_delivery_get(*, data_center: DataCenter, pk: int) -> WebhookDelivery:
    """A delivery to a live endpoint of the data center."""
    return get_object_or_404(
        WebhookDelivery.objects.select_related("endpoint").filter(
            endpoint__data_center=data_center, endpoint__revoked_at=None
        ),
        pk=pk,
    )
