"""Programs, companies, vouchers and the voucher ledger.

Money is `Decimal` with two places (`MONEY`), never float. A voucher's balance is the
sum of its ledger entries; `Voucher.balance` is a cache updated in the same transaction
as every entry and checked by `manage.py verify_ledger`.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from portal.models import City

ZERO = Decimal("0.00")


def money_field(verbose_name: str, **kwargs) -> models.DecimalField:
    """Yuan with two decimals; up to ¥999,999,999,999.99."""
    return models.DecimalField(verbose_name, max_digits=14, decimal_places=2, **kwargs)


def _localised(obj: models.Model, field: str) -> str:
    zh = (get_language() or "zh").startswith("zh")
    return getattr(obj, f"{field}_zh" if zh else f"{field}_en") or getattr(obj, f"{field}_zh")


class ProgramStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    OPEN = "open", _("Open")
    CLOSED = "closed", _("Closed")
    ARCHIVED = "archived", _("Archived")


class Program(models.Model):
    """One city's voucher program: its published terms, held as configuration."""

    city = models.ForeignKey(City, on_delete=models.PROTECT, related_name="programs")
    slug = models.SlugField(_("slug"), max_length=60)
    name_zh = models.CharField(_("name (Chinese)"), max_length=200)
    name_en = models.CharField(_("name (English)"), max_length=200)
    description_zh = models.TextField(_("description (Chinese)"), blank=True)
    description_en = models.TextField(_("description (English)"), blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=ProgramStatus.choices, default=ProgramStatus.DRAFT
    )
    opens_at = models.DateTimeField(_("opens at"), null=True, blank=True)
    closes_at = models.DateTimeField(_("closes at"), null=True, blank=True)
    budget = money_field(_("budget"))
    # Sum of face values awarded minus what revocation and expiry returned; kept under
    # the program row's lock so concurrent approvals can never exceed the budget.
    allocated = money_field(_("allocated"), default=ZERO)
    award_min = money_field(_("minimum award"))
    award_max = money_field(_("maximum award"))
    rate_domestic = models.DecimalField(
        _("rate for domestic chips"), max_digits=3, decimal_places=2
    )
    rate_other = models.DecimalField(_("rate for other chips"), max_digits=3, decimal_places=2)
    company_yearly_cap = money_field(_("yearly cap per company"), null=True, blank=True)
    validity_months = models.PositiveSmallIntegerField(_("voucher validity (months)"), default=12)
    grace_days = models.PositiveSmallIntegerField(_("grace days for late usage"), default=30)
    reviews_required = models.PositiveSmallIntegerField(_("reviews required"), default=0)
    rubric = models.JSONField(_("scoring rubric"), default=list, blank=True)
    notice_days = models.PositiveSmallIntegerField(_("public-notice days"), default=0)
    required_documents = models.JSONField(_("required document types"), default=list, blank=True)
    eligibility_rules = models.JSONField(_("eligibility rules"), default=list, blank=True)
    hard_fail_rejects = models.BooleanField(
        _("a failed eligibility rule rejects at once"), default=False
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("program")
        verbose_name_plural = _("programs")
        ordering = ["city", "-opens_at", "slug"]
        constraints = [
            models.UniqueConstraint(fields=["city", "slug"], name="program_slug_per_city"),
            models.CheckConstraint(
                condition=Q(award_min__gte=0)
                & Q(award_min__lte=F("award_max"))
                & Q(award_max__lte=F("budget")),
                name="program_award_bounds",
            ),
            models.CheckConstraint(
                condition=Q(rate_domestic__gte=0, rate_domestic__lte=1)
                & Q(rate_other__gte=0, rate_other__lte=1),
                name="program_rates_0_1",
            ),
            models.CheckConstraint(
                condition=Q(allocated__gte=0) & Q(allocated__lte=F("budget")),
                name="program_allocated_within_budget",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return _localised(self, "name")

    @property
    def description(self) -> str:
        return _localised(self, "description")

    @property
    def budget_remaining(self) -> Decimal:
        return self.budget - self.allocated


class Company(models.Model):
    """An applicant legal entity, identified by its unified social credit code."""

    legal_name = models.CharField(_("legal name"), max_length=200)
    credit_code = models.CharField(_("unified social credit code"), max_length=18, unique=True)
    registered_city = models.ForeignKey(
        City,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="registered_companies",
        verbose_name=_("registered in"),
        help_text=_("Leave empty when registered in a city not on this portal."),
    )
    registered_address = models.CharField(_("registered address"), max_length=300, blank=True)
    founded_on = models.DateField(_("founding date"), null=True, blank=True)
    headcount = models.PositiveIntegerField(_("headcount"), null=True, blank=True)
    revenue_last_year = money_field(_("revenue last year"), null=True, blank=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="CompanyMember", related_name="companies"
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("company")
        verbose_name_plural = _("companies")
        ordering = ["legal_name"]

    def __str__(self) -> str:
        return self.legal_name


class CompanyMember(models.Model):
    company = models.ForeignKey(Company, on_delete=models.CASCADE)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    is_owner = models.BooleanField(_("owner"), default=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("company member")
        verbose_name_plural = _("company members")
        constraints = [
            models.UniqueConstraint(fields=["company", "user"], name="company_member_once")
        ]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.company_id}"


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
    issued_at = models.DateTimeField(_("issued at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("voucher")
        verbose_name_plural = _("vouchers")
        ordering = ["-issued_at"]
        indexes = [models.Index(fields=["city", "status"], name="voucher_city_status")]
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
    `compute` (portal ← vouchers ← compute); compute's records point back with a real FK.
    """

    voucher = models.ForeignKey(Voucher, on_delete=models.PROTECT, related_name="entries")
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
    )
    actor_label = models.CharField(_("actor"), max_length=200)
    usage_record_id = models.BigIntegerField(_("usage record"), null=True, blank=True)
    memo = models.CharField(_("memo"), max_length=300, blank=True)
    created_at = models.DateTimeField(_("time"), auto_now_add=True)

    class Meta:
        verbose_name = _("ledger entry")
        verbose_name_plural = _("ledger entries")
        ordering = ["voucher", "id"]
        indexes = [
            models.Index(fields=["voucher", "id"], name="ledger_voucher_id"),
            models.Index(fields=["usage_record_id"], name="ledger_usage_record"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(balance_after__gte=0), name="ledger_balance_ge_0"),
        ]

    def __str__(self) -> str:
        return f"{self.voucher_id} {self.kind} {self.amount}"
