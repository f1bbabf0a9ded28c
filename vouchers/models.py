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
from django.db.models.functions import Now
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
    def required_document_labels(self) -> list[str]:
        return [document_type_label(t) for t in self.required_documents or []]

    @property
    def budget_remaining(self) -> Decimal:
        return self.budget - self.allocated

    @property
    def rubric_rows(self) -> list[dict]:
        """The rubric's criteria with each one's most points, weight × maximum."""
        return [
            {**c, "most": Decimal(str(c["weight"])) * c["max"]}
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
    `compute` (portal ← vouchers ← compute); compute's records point back.

    Usage ingestion writes one entry per record, millions a month, so the table carries
    only the indexes it is read by (primary key, voucher + id) and neither `voucher` nor
    `actor` is checked by a foreign-key constraint (PostgreSQL queues a check per
    inserted row even when `actor` is empty: a fifth of the entries' COPY): entries are
    only written by `vouchers.ledger` with the voucher row locked, vouchers and users
    are never deleted (PROTECT), and `verify_ledger` reports any entry whose voucher or
    actor is missing. Ids are taken a block at a time (migration 0006), so they are
    increasing but not dense.
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
    # The ORM's inserts set it; `ledger_charge_many` leaves it out of its COPY and the
    # database's default fills in the statement's time (one field less to parse).
    created_at = models.DateTimeField(_("time"), auto_now_add=True, db_default=Now())

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


class EligibilityResult(models.TextChoices):
    PASS = "pass", _("Pass")
    FAIL = "fail", _("Fail")
    NEEDS_REVIEW = "needs_review", _("Needs review")


class ApplicationState(models.TextChoices):
    DRAFT = "draft", _("Draft")
    SUBMITTED = "submitted", _("Submitted")
    SCREENING = "screening", _("Screening")
    IN_REVIEW = "in_review", _("In review")
    # The reviews are evenly split: the program manager adds a reviewer or decides.
    TIE_BREAK = "tie_break", _("Tie-break")
    INFO_REQUESTED = "info_requested", _("Information requested")
    RECOMMENDED = "recommended", _("Recommended")
    NOT_RECOMMENDED = "not_recommended", _("Not recommended")
    IN_NOTICE = "in_notice", _("In public notice")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    WITHDRAWN = "withdrawn", _("Withdrawn")


# The states in which reviewers score an application.
REVIEW_STATES = frozenset({ApplicationState.IN_REVIEW, ApplicationState.TIE_BREAK})


class Application(models.Model):
    """A company's request for a voucher from one program."""

    city = models.ForeignKey(City, on_delete=models.PROTECT, related_name="applications")
    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="applications")
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="applications")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    state = models.CharField(
        _("state"),
        max_length=20,
        choices=ApplicationState.choices,
        default=ApplicationState.DRAFT,
    )
    # Where an answered information request sends the application back to.
    resume_state = models.CharField(max_length=20, blank=True)
    title = models.CharField(_("project title"), max_length=200, blank=True)
    summary = models.TextField(_("summary"), blank=True)
    model_plans = models.TextField(_("model plans"), blank=True)
    requested_amount = money_field(_("requested amount"), null=True, blank=True)
    declares_no_related_party = models.BooleanField(
        _("the compute provider is not a related party"), default=False
    )
    declares_no_other_subsidy = models.BooleanField(
        _("no other subsidy for the same contract"), default=False
    )
    declares_true_information = models.BooleanField(_("the information is true"), default=False)
    eligibility = models.CharField(
        _("eligibility"), max_length=12, blank=True, choices=EligibilityResult.choices
    )
    awarded_amount = money_field(_("awarded amount"), null=True, blank=True)
    decision_reason = models.TextField(_("reason for the decision"), blank=True)
    notice_ends_at = models.DateTimeField(_("public notice ends"), null=True, blank=True)
    submitted_at = models.DateTimeField(_("submitted at"), null=True, blank=True)
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("application")
        verbose_name_plural = _("applications")
        ordering = ["-submitted_at", "-id"]
        indexes = [
            models.Index(fields=["city", "state"], name="application_city_state"),
            models.Index(fields=["program", "state"], name="application_program_state"),
        ]

    def __str__(self) -> str:
        return f"A{self.pk} {self.title}"


class ComputePlanRow(models.Model):
    application = models.ForeignKey(
        Application, on_delete=models.CASCADE, related_name="compute_plan"
    )
    accelerator = models.CharField(_("accelerator model"), max_length=64)
    domestic = models.BooleanField(_("domestic chip"), default=False)
    hours = models.DecimalField(_("accelerator-hours"), max_digits=12, decimal_places=1)
    preferred_data_center = models.CharField(_("preferred data center"), max_length=120, blank=True)

    class Meta:
        verbose_name = _("compute plan row")
        verbose_name_plural = _("compute plan rows")
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.accelerator} × {self.hours}"


def _document_path(instance: Document, filename: str) -> str:
    # Never the client's file name on disk: a random name under the application.
    import secrets

    return f"applications/{instance.application_id}/{secrets.token_hex(16)}"


# Names of the usual document types, so that pages show "营业执照" rather than the
# identifier a program lists in `required_documents`. A program may require a type not
# listed here; it is then shown as written.
DOCUMENT_TYPES = {
    "business_licence": _("Business licence"),
    "compute_contract": _("Compute purchase contract"),
    "invoice": _("Invoice"),
    "financial_statement": _("Financial statements"),
    "project_plan": _("Project plan"),
    "tax_certificate": _("Tax certificate"),
    "other": _("Other"),
}


def document_type_label(doc_type: str) -> str:
    return str(DOCUMENT_TYPES.get(doc_type, doc_type))


class Document(models.Model):
    """A file the applicant uploaded. Stored under MEDIA_ROOT, never served statically:
    downloads go through a view that checks access and audits staff downloads."""

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="documents")
    doc_type = models.CharField(_("document type"), max_length=60)
    file = models.FileField(upload_to=_document_path)
    original_name = models.CharField(_("file name"), max_length=200)
    content_type = models.CharField(max_length=40)
    size = models.PositiveIntegerField(_("size"))
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    uploaded_at = models.DateTimeField(_("uploaded at"), auto_now_add=True)

    class Meta:
        verbose_name = _("document")
        verbose_name_plural = _("documents")
        ordering = ["doc_type", "id"]

    def __str__(self) -> str:
        return self.original_name

    @property
    def doc_type_label(self) -> str:
        return document_type_label(self.doc_type)


class EligibilityOutcome(models.Model):
    application = models.ForeignKey(
        Application, on_delete=models.CASCADE, related_name="eligibility_outcomes"
    )
    rule = models.CharField(_("rule"), max_length=60)
    outcome = models.CharField(_("outcome"), max_length=12, choices=EligibilityResult.choices)
    message_zh = models.CharField(max_length=300)
    message_en = models.CharField(max_length=300)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.rule}: {self.outcome}"

    @property
    def message(self) -> str:
        return _localised(self, "message")


class Review(models.Model):
    """A reviewer's part in one application: assignment, conflict declaration, scores."""

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews"
    )
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    assigned_at = models.DateTimeField(_("assigned at"), auto_now_add=True)
    conflict = models.BooleanField(_("conflict of interest"), null=True)
    conflict_note = models.CharField(_("conflict note"), max_length=300, blank=True)
    scores = models.JSONField(_("scores"), default=dict, blank=True)
    total = models.DecimalField(_("total score"), max_digits=6, decimal_places=2, null=True)
    comment = models.TextField(_("comment"), blank=True)
    recommend = models.BooleanField(_("recommends"), null=True)
    submitted_at = models.DateTimeField(_("submitted at"), null=True, blank=True)

    class Meta:
        verbose_name = _("review")
        verbose_name_plural = _("reviews")
        constraints = [
            models.UniqueConstraint(fields=["application", "reviewer"], name="review_once")
        ]

    def __str__(self) -> str:
        return f"review {self.pk}"


class InfoRequest(models.Model):
    application = models.ForeignKey(
        Application, on_delete=models.CASCADE, related_name="info_requests"
    )
    asked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    question = models.TextField(_("question"))
    asked_at = models.DateTimeField(auto_now_add=True)
    answer = models.TextField(_("answer"), blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["asked_at"]

    def __str__(self) -> str:
        return self.question[:40]


class Objection(models.Model):
    """Raised by a signed-in user during public notice; must be resolved before approval."""

    application = models.ForeignKey(
        Application, on_delete=models.CASCADE, related_name="objections"
    )
    raised_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    text = models.TextField(_("objection"))
    raised_at = models.DateTimeField(auto_now_add=True)
    resolution = models.TextField(_("resolution"), blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["raised_at"]

    def __str__(self) -> str:
        return self.text[:40]


class StateChange(models.Model):
    """The application's timeline, shown to applicant and staff."""

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="timeline")
    from_state = models.CharField(max_length=20)
    to_state = models.CharField(max_length=20)
    actor_label = models.CharField(max_length=200)
    note = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.from_state} → {self.to_state}"

    @property
    def to_state_label(self) -> str:
        return ApplicationState(self.to_state).label

    @property
    def tells_review_outcome(self) -> bool:
        """Whether the change's note tells how the reviews went (the tally, a tie-break's
        reason): hidden from staff who may not see the reviews (blind review)."""
        return self.from_state in REVIEW_STATES and self.to_state not in (
            ApplicationState.INFO_REQUESTED,
            ApplicationState.WITHDRAWN,
        )


class ReminderSent(models.Model):
    """A reminder that went out, so the daily job never sends the same one twice
    (vouchers.jobs: a voucher 80% used or ending soon, a review waiting)."""

    kind = models.CharField(max_length=40)
    key = models.CharField(max_length=100)
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # Not "reminder_once": compute's table kept that name until migration compute 0014.
        constraints = [models.UniqueConstraint(fields=["kind", "key"], name="reminder_sent_once")]

    def __str__(self) -> str:
        return f"{self.kind}:{self.key}"
