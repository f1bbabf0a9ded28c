"""Webhook endpoints (registered by a data center's operators, audited) and deliveries:
`webhook_emit` records one delivery per subscribed endpoint in the caller's transaction
and publishes it once that commits; `delivery_attempt` makes one POST outside any
transaction and records its outcome, giving the delay before the next try."""

from __future__ import annotations

import ipaddress
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from compute.models import DataCenter
from compute.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent
from compute.webhooks.signing import HEADER, signature_header
from portal.audit import audit_record
from portal.errors import DomainError
from portal.models import User

# Retries: after 1, 2, 4, … minutes, at most 6 hours apart, for 24 hours from the event.
RETRY_FOR = timedelta(hours=24)
FIRST_RETRY = timedelta(minutes=1)
LONGEST_WAIT = timedelta(hours=6)
TIMEOUT_SECONDS = 10


def retry_delay(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed try (1 → 1 minute, doubling, ≤ 6 hours)."""
    return min(FIRST_RETRY * 2 ** min(max(attempts - 1, 0), 16), LONGEST_WAIT)


def _public_https(url: str) -> bool:
    """https, and not a loopback, private, link-local or reserved address written as
    an IP or `localhost` (names are not resolved here: see docs/architecture.md)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not host or host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return True
    return address.is_global


def endpoint_create(
    *, data_center: DataCenter, actor: User, url: str, events: list[str]
) -> tuple[WebhookEndpoint, str]:
    """Register `url` for `events`; returns the endpoint and its secret (shown once)."""
    unknown = sorted(set(events) - set(WebhookEvent.values))
    if not events or unknown:
        message = _("Choose at least one event.")
        raise DomainError(message, code="invalid", fields={"events": [message]})
    if not url.startswith(("https://", "http://")):
        message = _("Give the endpoint's full address.")
        raise DomainError(message, code="invalid", fields={"url": [message]})
    if not settings.WEBHOOK_PRIVATE_ADDRESSES and not _public_https(url):
        # The workers would POST wherever an operator points them: not at the
        # portal's own network (its database, Redis, metadata services).
        message = _("Give an https:// address on the internet, not a local or private one.")
        raise DomainError(message, code="invalid", fields={"url": [message]})
    secret = secrets.token_hex(32)
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.create(
            data_center=data_center,
            url=url,
            events=sorted(set(events)),
            secret=secret,
            created_by=actor,
        )
        audit_record(
            action="webhook.create",
            actor=actor,
            target=endpoint,
            data={"data_center": data_center.slug, "url": url, "events": endpoint.events},
        )
    return endpoint, secret


def endpoint_revoke(*, endpoint: WebhookEndpoint, actor: User) -> WebhookEndpoint:
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        if endpoint.revoked_at is None:
            endpoint.revoked_at = timezone.now()
            endpoint.save(update_fields=["revoked_at"])
            audit_record(
                action="webhook.revoke",
                actor=actor,
                target=endpoint,
                data={"data_center": endpoint.data_center.slug, "url": endpoint.url},
            )
    return endpoint


def webhook_emit(*, event: WebhookEvent, data_center_id: int, data: dict[str, Any]) -> int:
    """Record `event` for every live endpoint of the data center that wants it, and
    publish each delivery once the caller's transaction commits. Returns how many."""
    from compute.webhooks.tasks import webhook_deliver_task
    from portal.queue import publish_on_commit

    endpoints = [
        e
        for e in WebhookEndpoint.objects.filter(data_center_id=data_center_id, revoked_at=None)
        if event in e.events
    ]
    if not endpoints:
        return 0
    event_id = uuid.uuid4()
    payload = {
        "id": str(event_id),
        "type": str(event),
        "created_at": timezone.now().isoformat(),
        "data": data,
    }
    deliveries = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(endpoint=e, event_id=event_id, event=event, payload=payload)
        for e in endpoints
    )
    for delivery in deliveries:
        publish_on_commit(webhook_deliver_task, delivery.pk)
    return len(deliveries)


@dataclass(frozen=True, slots=True)
class Attempt:
    status: str
    status_code: int | None
    retry_in: timedelta | None  # None: nothing more to do


def delivery_attempt(delivery_id: int, *, now: datetime | None = None) -> Attempt:
    """POST the delivery once (no transaction is open meanwhile) and record the answer:
    a 2xx delivers it; anything else is retried until 24 hours after the event."""
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    if delivery.status != DeliveryStatus.PENDING:
        return Attempt(delivery.status, delivery.last_status_code, None)
    endpoint = delivery.endpoint
    code: int | None = None
    error = ""
    if endpoint.revoked_at is not None:
        error = "endpoint revoked"
    else:
        body = json.dumps(delivery.payload, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Suanli-Webhooks/1",
            HEADER: signature_header(endpoint.secret, body),
            "Suanli-Event-Id": str(delivery.event_id),
            "Suanli-Event": delivery.event,
        }
        try:
            code = httpx.post(
                endpoint.url, content=body, headers=headers, timeout=TIMEOUT_SECONDS
            ).status_code
        except httpx.HTTPError as failure:
            error = f"{type(failure).__name__}: {failure}"[:300]
    now = now or timezone.now()
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery_id)
        if delivery.status != DeliveryStatus.PENDING:  # delivered meanwhile by a redelivery
            return Attempt(delivery.status, delivery.last_status_code, None)
        delivery.attempts += 1
        delivery.last_status_code = code
        delivery.last_error = error or ("" if code and 200 <= code < 300 else f"HTTP {code}")
        retry_in = None
        if code is not None and 200 <= code < 300:
            delivery.status, delivery.delivered_at, delivery.next_attempt_at = (
                DeliveryStatus.DELIVERED,
                now,
                None,
            )
        elif (
            endpoint.revoked_at is not None
            or now + retry_delay(delivery.attempts) > delivery.created_at + RETRY_FOR
        ):
            delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, None
        else:
            retry_in = retry_delay(delivery.attempts)
            delivery.next_attempt_at = now + retry_in
        delivery.save()
    return Attempt(delivery.status, code, retry_in)


def delivery_redeliver(*, delivery: WebhookDelivery, actor: User) -> WebhookDelivery:
    """Send an event again (the operator's "redeliver"): a new delivery of the same
    event, with the same id, so a receiver that has it already ignores it."""
    from compute.webhooks.tasks import webhook_deliver_task
    from portal.queue import publish_on_commit

    with transaction.atomic():
        again = WebhookDelivery.objects.create(
            endpoint=delivery.endpoint,
            event_id=delivery.event_id,
            event=delivery.event,
            payload=delivery.payload,
        )
        audit_record(
            action="webhook.redeliver",
            actor=actor,
            target=delivery.endpoint,
            data={"delivery": delivery.pk, "event": delivery.event, "as": again.pk},
        )
        publish_on_commit(webhook_deliver_task, again.pk)
    return again


def deliveries_due(*, now: datetime | None = None) -> list[int]:
    """Pending deliveries whose next try is due (retries are the sweeper's, every
    minute), and first tries whose message never reached the broker (a minute old)."""
    now = now or timezone.now()
    return list(
        WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING)
        .filter(
            Q(next_attempt_at__lte=now)
            | Q(next_attempt_at=None, attempts=0, created_at__lt=now - timedelta(minutes=1))
        )
        .order_by("id")
        .values_list("pk", flat=True)[:1000]
    )


VOUCHER_EVENTS = {
    "suspended": WebhookEvent.VOUCHER_SUSPENDED,
    "active": WebhookEvent.VOUCHER_RESUMED,
    "exhausted": WebhookEvent.VOUCHER_RESUMED,
    "revoked": WebhookEvent.VOUCHER_REVOKED,
    "expired": WebhookEvent.VOUCHER_EXPIRED,
}


def voucher_status_changed_receiver(sender: object, voucher: Any, **_kwargs: Any) -> None:
    """vouchers.signals.voucher_status_changed: tell each data center that holds the
    voucher (a requested or active redemption) by webhook."""
    from compute.models import Redemption, RedemptionStatus

    event = VOUCHER_EVENTS.get(voucher.status)
    if event is None:
        return
    holders = (
        Redemption.objects.filter(
            voucher=voucher, status__in=[RedemptionStatus.REQUESTED, RedemptionStatus.ACTIVE]
        )
        .values_list("data_center_id", flat=True)
        .distinct()
    )
    for data_center_id in sorted(holders):
        webhook_emit(
            event=event,
            data_center_id=data_center_id,
            data={
                "voucher": voucher.code,
                "status": voucher.status,
                "valid_until": voucher.valid_until.isoformat() if voucher.valid_until else None,
            },
        )
