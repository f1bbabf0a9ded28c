"""Integrity checks on usage (issue #19): what a program and a data center declare, and
the findings the checks raise. Imported by compute.models, so these belong to the
compute app and its migrations."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from portal.models import City
from vouchers.models import Company, Program, Voucher


class FindingRule(models.TextChoices):
    CAPACITY = "capacity", _("Usage beyond the declared inventory")
    PRICE_BAND = "price_band", _("Unit price outside the band")
    PLAN_MODEL = "plan_model", _("Accelerator not in the compute plan")
    PLAN_HOURS = "plan_hours", _("Card-hours beyond the compute plan")
    FAST_DRAIN = "fast_drain", _("Voucher drained much faster than planned")
    AROUND_THE_CLOCK = "around_the_clock", _("Identical records around the clock")
    SAME_MINUTE = "same_minute", _("Many companies starting in the same minute")
    RELATED_PARTY = "related_party", _("Related parties")


class Severity(models.TextChoices):
    LOW = "low", _("Low")
    MEDIUM = "medium", _("Medium")
    HIGH = "high", _("High")


class FindingStatus(models.TextChoices):
    OPEN = "open", _("Open")
    CONFIRMED = "confirmed", _("Confirmed")
    CLEARED = "cleared", _("Cleared")


# The fast-drain check's factor for a program that sets none (compute/integrity/patterns.py).
DEFAULT_DRAIN_FACTOR = Decimal("3")
# How far a company's card-hours may exceed its plans before `plan_hours` fires, and a
# price band's tolerance, unless the program sets others.
DEFAULT_PLAN_MARGIN_PERCENT = Decimal("10")
DEFAULT_BAND_TOLERANCE_PERCENT = Decimal("30")


class IntegrityRules(models.Model):
    """A program's settings for the checks. Without a row the plan checks are off and
    nothing is held; price bands apply wherever they are set."""

    program = models.OneToOneField(
        Program, on_delete=models.CASCADE, related_name="integrity_rules"
    )
    check_plan = models.BooleanField(
        _("check usage against the compute plan"),
        default=True,
        help_text=_("Flag accelerators not in the approved plan and card-hours beyond it."),
    )
    plan_margin_percent = models.DecimalField(
        _("margin over the plan (%)"),
        max_digits=6,
        decimal_places=2,
        default=DEFAULT_PLAN_MARGIN_PERCENT,
    )
    hold_charges = models.BooleanField(
        _("hold flagged charges"),
        default=False,
        help_text=_(
            "A record flagged while it is received is charged but held: it is not paid to "
            "the data center until staff clear the finding, and voided if they confirm it."
        ),
    )
    drain_factor = models.DecimalField(
        _("fast-drain factor"),
        max_digits=5,
        decimal_places=2,
        default=DEFAULT_DRAIN_FACTOR,
        help_text=_("Flag a voucher whose last 7 days ran this many times its planned pace."),
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("integrity rules")
        verbose_name_plural = _("integrity rules")

    def __str__(self) -> str:
        return f"{self.program_id}"


class PriceBand(models.Model):
    """A program's reference price per card-hour of one accelerator model, with a
    tolerance either side."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="price_bands")
    accelerator = models.CharField(_("accelerator model"), max_length=64)
    reference_price = models.DecimalField(
        _("reference price (¥ per card-hour)"), max_digits=10, decimal_places=2
    )
    tolerance_percent = models.DecimalField(
        _("tolerance (%)"),
        max_digits=5,
        decimal_places=2,
        default=DEFAULT_BAND_TOLERANCE_PERCENT,
    )

    class Meta:
        verbose_name = _("price band")
        verbose_name_plural = _("price bands")
        ordering = ["program", "accelerator"]
        constraints = [
            models.UniqueConstraint(fields=["program", "accelerator"], name="price_band_once"),
            models.CheckConstraint(
                condition=Q(reference_price__gt=0), name="price_band_reference_positive"
            ),
            models.CheckConstraint(
                condition=Q(tolerance_percent__gte=0) & Q(tolerance_percent__lte=100),
                name="price_band_tolerance_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.accelerator} ¥{self.reference_price} ±{self.tolerance_percent}%"

    @property
    def low(self) -> Decimal:
        return self.reference_price * (100 - self.tolerance_percent) / 100

    @property
    def high(self) -> Decimal:
        return self.reference_price * (100 + self.tolerance_percent) / 100


class Inventory(models.Model):
    """Cards of one accelerator model a data center has for one city's registration,
    from a date on (a later row for the same model replaces it from its own date)."""

    registration = models.ForeignKey(
        "compute.Registration", on_delete=models.CASCADE, related_name="inventory"
    )
    accelerator = models.CharField(_("accelerator model"), max_length=64)
    cards = models.PositiveIntegerField(_("cards"))
    valid_from = models.DateField(_("from"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("declared at"), auto_now_add=True)

    class Meta:
        verbose_name = _("inventory")
        verbose_name_plural = _("inventory")
        ordering = ["registration", "accelerator", "-valid_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["registration", "accelerator", "valid_from"], name="inventory_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.accelerator} × {self.cards} from {self.valid_from}"


class RelatedParty(models.Model):
    """A shareholder or manager a company or a data center declares: a name and an ID
    number or registration code. The same code on both sides of a redemption is a
    related-party finding."""

    company = models.ForeignKey(
        Company, on_delete=models.CASCADE, null=True, blank=True, related_name="related_parties"
    )
    data_center = models.ForeignKey(
        "compute.DataCenter",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="related_parties",
    )
    name = models.CharField(_("name"), max_length=120)
    code = models.CharField(_("ID number or registration code"), max_length=40)

    class Meta:
        verbose_name = _("shareholder or manager")
        verbose_name_plural = _("shareholders and managers")
        ordering = ["id"]
        indexes = [models.Index(fields=["code"], name="related_party_code")]
        constraints = [
            models.CheckConstraint(
                condition=Q(company__isnull=True, data_center__isnull=False)
                | Q(company__isnull=False, data_center__isnull=True),
                name="related_party_one_owner",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Finding(models.Model):
    """Something a check found in a data center's usage for one city, for its staff to
    confirm (the records are voided) or clear (with a reason). `key` makes a nightly
    check that runs again find the same finding rather than a second one."""

    city = models.ForeignKey(City, on_delete=models.PROTECT, related_name="findings")
    data_center = models.ForeignKey(
        "compute.DataCenter", on_delete=models.PROTECT, related_name="findings"
    )
    voucher = models.ForeignKey(
        Voucher, on_delete=models.PROTECT, null=True, blank=True, related_name="findings"
    )
    company = models.ForeignKey(
        Company, on_delete=models.PROTECT, null=True, blank=True, related_name="findings"
    )
    rule = models.CharField(_("rule"), max_length=20, choices=FindingRule.choices)
    severity = models.CharField(_("severity"), max_length=10, choices=Severity.choices)
    key = models.CharField(max_length=200)
    evidence = models.JSONField(_("evidence"), default=dict)
    status = models.CharField(
        _("status"), max_length=10, choices=FindingStatus.choices, default=FindingStatus.OPEN
    )
    holds = models.BooleanField(_("charges held"), default=False)
    records = models.ManyToManyField(
        "compute.UsageRecord", through="FindingRecord", related_name="findings"
    )
    record_count = models.PositiveIntegerField(_("records"), default=0)
    raised_at = models.DateTimeField(_("raised at"), auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    reason = models.CharField(_("reason"), max_length=300, blank=True)

    class Meta:
        verbose_name = _("finding")
        verbose_name_plural = _("findings")
        ordering = ["-raised_at", "-id"]
        indexes = [
            models.Index(fields=["city", "status", "-raised_at"], name="finding_city_status"),
            models.Index(fields=["data_center", "-raised_at"], name="finding_dc_raised"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["data_center", "rule", "key"], name="finding_once"),
        ]

    def __str__(self) -> str:
        return f"F{self.pk} {self.rule}"


class FindingRecord(models.Model):
    finding = models.ForeignKey(Finding, on_delete=models.CASCADE, related_name="+")
    usage_record = models.ForeignKey(
        "compute.UsageRecord", on_delete=models.PROTECT, related_name="+", db_constraint=False
    )

    class Meta:
        verbose_name = _("finding record")
        verbose_name_plural = _("finding records")
        constraints = [
            models.UniqueConstraint(fields=["finding", "usage_record"], name="finding_record_once"),
        ]

    def __str__(self) -> str:
        return f"{self.finding_id}:{self.usage_record_id}"
