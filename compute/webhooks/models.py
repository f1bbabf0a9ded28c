"""Webhook endpoints and deliveries (imported by compute.models, so they belong to the
compute app and its migrations)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class WebhookEvent(models.TextChoices):
    REDEMPTION_REQUESTED = "redemption.requested", _("Redemption requested")
    REDEMPTION_CANCELLED = "redemption.cancelled", _("Redemption cancelled")
    REDEMPTION_CLOSED = "redemption.closed", _("Redemption closed")
    VOUCHER_SUSPENDED = "voucher.suspended", _("Voucher suspended")
    VOUCHER_RESUMED = "voucher.resumed", _("Voucher resumed")
    VOUCHER_REVOKED = "voucher.revoked", _("Voucher revoked")
    VOUCHER_EXPIRED = "voucher.expired", _("Voucher expired")
    BATCH_APPLIED = "batch.applied", _("Usage batch applied")
    STATEMENT_ISSUED = "statement.issued", _("Statement issued")
    FINDING_RAISED = "finding.raised", _("Finding raised on your records")


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    DELIVERED = "delivered", _("Delivered")
    FAILED = "failed", _("Failed")


class WebhookEndpoint(models.Model):
    """Where a data center wants to hear of changes, and which changes. The secret signs
    each delivery; it is shown once when the endpoint is registered."""

    data_center = models.ForeignKey(
        "compute.DataCenter", on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.URLField(_("URL"), max_length=500)
    events = models.JSONField(_("events"), default=list)
    secret = models.CharField(max_length=64)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    class Meta:
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")
        ordering = ["data_center", "id"]

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    """One event for one endpoint. `event_id` is the event's id (the same in every
    endpoint's delivery of it, and in a redelivery): receivers use it to ignore a
    second copy."""

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event_id = models.UUIDField()
    event = models.CharField(max_length=40, choices=WebhookEvent.choices)
    payload = models.JSONField()
    status = models.CharField(
        max_length=12, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        ordering = ["-id"]
        indexes = [
            # The console lists an endpoint's deliveries newest first.
            models.Index(fields=["endpoint", "-id"], name="webhook_delivery_endpoint"),
            # The sweeper's "which are due": pending ones only, a small part of the table.
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status="pending"),
                name="webhook_delivery_due",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} {self.event_id}"
