"""Programs and companies (with their members and invitations)."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from portal.models import City
from vouchers.models.base import ZERO, _localised, document_type_label, money_field


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
    # Awards made but not yet accepted (Program.acceptance_days > 0): held back from the
    # budget until the company accepts (→ allocated) or declines (→ budget again).
    reserved = money_field(_("reserved for awards awaiting acceptance"), default=ZERO)
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
    acceptance_days = models.PositiveSmallIntegerField(
        _("days to accept an award"),
        default=0,
        help_text=_(
            "The company accepts or declines the award within this many days before the "
            "voucher is issued; 0 issues the voucher at approval."
        ),
    )
    # Blind review (vouchers.workflow.reviews_visible_filter): a reviewer never sees the
    # other reviews before submitting their own; with this set, not afterwards either.
    reviews_blind = models.BooleanField(
        _("keep reviews blind to reviewers"),
        default=False,
        help_text=_(
            "Reviewers never see the other reviews, even after submitting their own. "
            "Program managers, approvers and auditors always see them."
        ),
    )
    rubric = models.JSONField(_("scoring rubric"), default=list, blank=True)
    notice_days = models.PositiveSmallIntegerField(_("public-notice days"), default=0)
    # The public results page (结果公示, /<city>/programs/<slug>/results/): which companies
    # were awarded how much and when, once their notice ended. Off: the page is a 404.
    publish_results = models.BooleanField(
        _("publish the results"),
        default=True,
        help_text=_(
            "Show the awarded companies, amounts and decision dates on a public page once "
            "each award's public notice has ended. Never documents, scores or personal data."
        ),
    )
    # Outcome reports (成果报告, vouchers.models.outcomes): the final one is due this many
    # days after the voucher's validity ends; a mid-term one, if set, this many months
    # after the voucher starts.
    outcome_reports_required = models.BooleanField(
        _("ask for outcome reports"),
        default=False,
        help_text=_(
            "Each voucher's company reports what it achieved: usage, models, products, "
            "papers, hires, with documents. A program manager accepts or returns it."
        ),
    )
    outcome_final_days = models.PositiveSmallIntegerField(
        _("final report due (days after the voucher ends)"),
        default=30,
        help_text=_("0: due on the voucher's last day."),
    )
    outcome_midterm_months = models.PositiveSmallIntegerField(
        _("mid-term report due (months after the voucher starts)"),
        null=True,
        blank=True,
        help_text=_("Empty: no mid-term report. Less than the voucher's validity."),
    )
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
            models.CheckConstraint(
                condition=Q(reserved__gte=0) & Q(reserved__lte=F("budget") - F("allocated")),
                name="program_reserved_within_budget",
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
    def required_document_labels(self) -> list[str]:
        return [document_type_label(t) for t in self.required_documents or []]

    @property
    def budget_remaining(self) -> Decimal:
        return self.budget - self.allocated - self.reserved

    @property
    def rubric_rows(self) -> list[dict]:
        """The rubric's criteria with each one's most points, weight × maximum, and its
        `label`: the English name on English pages when it has one."""
        return [
            {**c, "most": Decimal(str(c["weight"])) * c["max"], "label": criterion_label(c)}
            for c in self.rubric or []
            if isinstance(c, dict) and {"name", "weight", "max"} <= c.keys()
        ]

    @property
    def rubric_max_total(self) -> Decimal:
        """The highest total a review can give: Σ weight × maximum."""
        return sum((row["most"] for row in self.rubric_rows), Decimal("0"))


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


class CompanyInvitation(models.Model):
    """The owner invites a colleague by e-mail; the invitation is accepted by signing in
    with that address and opening the link."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(_("email address"))
    token = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    accepted_at = models.DateTimeField(_("accepted at"), null=True, blank=True)

    class Meta:
        verbose_name = _("invitation")
        verbose_name_plural = _("invitations")

    def __str__(self) -> str:
        return self.email


def criterion_label(criterion: dict) -> str:
    """A rubric criterion's name in the reader's language: `name_en` on English pages
    when the manager gave one, else `name` (also the key its points are stored under)."""
    english = not (get_language() or "zh").startswith("zh")
    return str((english and criterion.get("name_en")) or criterion["name"])
