"""Vouchers and the voucher ledger.

Money is `Decimal` with two places (`MONEY`), never float. A voucher's balance is the
sum of its ledger entries; `Voucher.balance` is a cache updated in the same transaction
as every entry and checked by `manage.py verify_ledger`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Now
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from portal.models import City
from vouchers.models.base import money_field
from vouchers.models.programs import Company, Program


class VoucherStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    SUSPENDED = "suspended", _("Suspended")
    EXPIRED = "expired", _("Expired")
    EXHAUSTED = "exhausted", _("Exhausted")
    REVOKED = "revoked", _("Revoked")


class Voucher(models.Model):
    """A company's award from a program, spent at data centers through the ledger."""

    code = models.CharField(_("code"), max_length=24, unique=True)
    city = models.ForeignKey(City, on_delete=models.PROTECT, related_name="vouchers")
    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="vouchers")
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="vouchers")
    face_value = money_field(_("face value"))
    balance = money_field(_("balance"))
    status = models.CharField(
        _("status"), max_length=10, choices=VoucherStatus.choices, default=VoucherStatus.ACTIVE
    )
    valid_from = models.DateField(_("valid from"))
    valid_until = models.DateField(_("valid until"))
    status_reason = models.CharField(_("reason"), max_length=300, blank=True)
    application = models.OneToOneField(
        "Application",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="voucher",
        verbose_name=_("application"),
    )
    issued_at = models.DateTimeField(_("issued at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    # The mac of the voucher's last ledger entry, the head of its keyed chain
    # (vouchers/ledger_chain.py): written with the balance, under the same lock.
    ledger_head = models.CharField(_("ledger chain head"), max_length=64, blank=True, default="")

    class Meta:
        verbose_name = _("voucher")
        verbose_name_plural = _("vouchers")
        ordering = ["-issued_at"]
        indexes = [
            models.Index(fields=["city", "status"], name="voucher_city_status"),
            # The staff's voucher list, newest first, a page without sorting the city.
            models.Index(fields=["city", "-issued_at"], name="voucher_city_issued"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(balance__gte=0) & Q(balance__lte=F("face_value")),
                name="voucher_balance_within_face_value",
            ),
            models.CheckConstraint(
                condition=Q(valid_from__lte=F("valid_until")), name="voucher_validity_in_order"
            ),
        ]

    def __str__(self) -> str:
        return self.code


class EntryKind(models.TextChoices):
    ISSUE = "issue", _("Issue")
    CHARGE = "charge", _("Charge")
    REVERSAL = "reversal", _("Reversal")
    EXPIRE = "expire", _("Expiry")
    REVOKE = "revoke", _("Revocation")
    ADJUST = "adjust", _("Adjustment")


class LedgerEntry(models.Model):
    """One movement of money on a voucher. Append-only: PostgreSQL refuses UPDATE and
    DELETE (trigger `vouchers_ledgerentry_append_only`); corrections are new entries.

    `amount` is signed: issue and reversal add, charge, expire and revoke subtract.
    `usage_record_id` is the id of the compute app's usage record the entry came from.
    It is a plain column, not a foreign key, because `vouchers` must not depend on
    `compute` (portal ← vouchers ← compute); compute's records point back.

    Usage ingestion writes one entry per record, millions a month, so the table carries
    only the indexes it is read by (primary key, voucher + id) and neither `voucher` nor
    `actor` is checked by a foreign-key constraint (PostgreSQL queues a check per
    inserted row even when `actor` is empty: a fifth of the entries' COPY): entries are
    only written by `vouchers.ledger` with the voucher row locked, vouchers and users
    are never deleted (PROTECT), and `verify_ledger` reports any entry whose voucher or
    actor is missing. Ids are taken a block at a time (the identity steps by 5,000, set
    in the initial migration), so they are increasing but not dense.
    """

    voucher = models.ForeignKey(
        Voucher,
        on_delete=models.PROTECT,
        related_name="entries",
        db_index=False,
        db_constraint=False,
    )
    kind = models.CharField(_("kind"), max_length=10, choices=EntryKind.choices)
    amount = money_field(_("amount"))
    balance_after = money_field(_("balance after"))
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("actor"),
        db_index=False,
        db_constraint=False,
    )
    actor_label = models.CharField(_("actor"), max_length=200)
    usage_record_id = models.BigIntegerField(_("usage record"), null=True, blank=True)
    memo = models.CharField(_("memo"), max_length=300, blank=True)
    # Sealed in the mac, so `vouchers.ledger` sets it before it writes the entry.
    created_at = models.DateTimeField(
        _("time"), default=timezone.now, db_default=Now(), editable=False
    )
    # The keyed chain (vouchers/ledger_chain.py): which key sealed the entry, and the
    # HMAC-SHA-256 over its columns and the voucher's previous entry's mac.
    # An entry inserted around the code without them is "not sealed" (verify_ledger).
    key_id = models.CharField(_("key"), max_length=12, blank=True, default="", db_default="")
    mac = models.CharField(_("MAC"), max_length=64, blank=True, default="", db_default="")

    class Meta:
        verbose_name = _("ledger entry")
        verbose_name_plural = _("ledger entries")
        ordering = ["voucher", "id"]
        indexes = [
            models.Index(fields=["voucher", "id"], name="ledger_voucher_id"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(balance_after__gte=0), name="ledger_balance_ge_0"),
        ]

    def __str__(self) -> str:
        return f"{self.voucher_id} {self.kind} {self.amount}"


# --- applications ---------------------------------------------------------------------------
