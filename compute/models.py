"""Data centers: the registered compute providers whose GPU time vouchers pay for."""

from __future__ import annotations

import orjson
from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

# Webhook endpoints and deliveries are in a module of their own (compute/webhooks/):
# imported here, so that they load with the compute app's models.
from compute.webhooks.models import (  # noqa: F401
    DeliveryStatus,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from portal.models import City
from vouchers.models import LedgerEntry, Program, Voucher, money_field


class Hub(models.TextChoices):
    """National compute hubs of the "East Data, West Computing" (东数西算) plan."""

    JING_JIN_JI = "jing_jin_ji", _("Beijing-Tianjin-Hebei")
    YANGTZE_DELTA = "yangtze_delta", _("Yangtze River Delta")
    GREATER_BAY = "greater_bay", _("Guangdong-Hong Kong-Macao")
    CHENGYU = "chengyu", _("Chengdu-Chongqing")
    GUIZHOU = "guizhou", _("Guizhou")
    INNER_MONGOLIA = "inner_mongolia", _("Inner Mongolia")
    GANSU = "gansu", _("Gansu")
    NINGXIA = "ningxia", _("Ningxia")


class DataCenter(models.Model):
    slug = models.SlugField(_("slug"), max_length=40, unique=True)
    name_zh = models.CharField(_("name (Chinese)"), max_length=120)
    name_en = models.CharField(_("name (English)"), max_length=120)
    # The operating company and the cluster have a name in each language, like the data
    # center itself (issue #14 item 2): a Chinese page must not show "Gui'an", nor an
    # English one "中国电信天翼云". `operator` and `cluster` below pick the reader's.
    operator_zh = models.CharField(_("operator (Chinese)"), max_length=120)
    operator_en = models.CharField(_("operator (English)"), max_length=120)
    hub = models.CharField(_("national hub"), max_length=20, choices=Hub.choices)
    cluster_zh = models.CharField(_("cluster (Chinese)"), max_length=80)
    cluster_en = models.CharField(
        _("cluster (English)"), max_length=80, help_text=_("e.g. Gui'an, Zhongwei")
    )
    state_run = models.BooleanField(_("state-run"), default=True)
    contact_email = models.EmailField(_("contact email"), blank=True)
    feed_url = models.URLField(
        _("feed URL"), blank=True, help_text=_("Where the portal pulls usage (api.md, the feed).")
    )
    feed_token = models.CharField(
        _("outbound token"),
        max_length=200,
        blank=True,
        help_text=_("Bearer token the portal sends to the feed. Kept as given: it is theirs."),
    )
    programs = models.ManyToManyField(
        Program,
        blank=True,
        related_name="data_centers",
        verbose_name=_("programs whose vouchers it accepts"),
    )
    operators = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="operated_data_centers",
        verbose_name=_("operator users"),
    )
    is_active = models.BooleanField(_("active"), default=True)
    # Pull sync state (compute.sync): where the next run starts, and the feed's health.
    feed_cursor = models.CharField(_("feed cursor"), max_length=500, blank=True)
    feed_healthy = models.BooleanField(_("feed healthy"), default=True)
    feed_error = models.CharField(_("last feed error"), max_length=500, blank=True)
    feed_checked_at = models.DateTimeField(_("feed last checked"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("data center")
        verbose_name_plural = _("data centers")
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return _in_reader_language(self, "name")

    @property
    def operator(self) -> str:
        return _in_reader_language(self, "operator")

    @property
    def cluster(self) -> str:
        return _in_reader_language(self, "cluster")


def _in_reader_language(obj: models.Model, field: str) -> str:
    """`<field>_zh` on a Chinese page, `<field>_en` otherwise (the other one if empty)."""
    zh = (get_language() or "").startswith("zh")
    first, second = ("_zh", "_en") if zh else ("_en", "_zh")
    return getattr(obj, field + first) or getattr(obj, field + second)


class RegistrationStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    SUSPENDED = "suspended", _("Suspended")
    ENDED = "ended", _("Ended")


class Registration(models.Model):
    """A data center registered to serve one city's vouchers."""

    city = models.ForeignKey(City, on_delete=models.PROTECT, related_name="registrations")
    data_center = models.ForeignKey(
        DataCenter, on_delete=models.PROTECT, related_name="registrations"
    )
    status = models.CharField(
        _("status"),
        max_length=10,
        choices=RegistrationStatus.choices,
        default=RegistrationStatus.ACTIVE,
    )
    starts_on = models.DateField(_("starts on"))
    ends_on = models.DateField(_("ends on"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("registration")
        verbose_name_plural = _("registrations")
        constraints = [
            models.UniqueConstraint(fields=["city", "data_center"], name="registration_once"),
        ]

    def __str__(self) -> str:
        return f"{self.data_center_id}@{self.city_id}"


class ApiKey(models.Model):
    """A data center's API key. Only the SHA-256 of the key is stored; the prefix is
    shown so operators can tell keys apart. Keys carry 256 bits of randomness, so a
    fast hash is enough (no password stretching needed)."""

    data_center = models.ForeignKey(DataCenter, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(_("name"), max_length=100, blank=True)
    prefix = models.CharField(_("prefix"), max_length=16, unique=True)
    key_hash = models.CharField(_("key hash"), max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)
    # Optional: a key with an expiry is refused from then on (401, saying so), and its
    # data center's operators are reminded before (compute.services).
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    expiry_reminded_at = models.DateTimeField(_("expiry reminder sent"), null=True, blank=True)

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.prefix

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()


class RedemptionStatus(models.TextChoices):
    REQUESTED = "requested", _("Requested")
    ACTIVE = "active", _("Active")
    REJECTED = "rejected", _("Rejected")
    CANCELLED = "cancelled", _("Cancelled")
    CLOSED = "closed", _("Closed")


class Redemption(models.Model):
    """A voucher bound to one data center under a compute contract."""

    voucher = models.ForeignKey(Voucher, on_delete=models.PROTECT, related_name="redemptions")
    data_center = models.ForeignKey(
        DataCenter, on_delete=models.PROTECT, related_name="redemptions"
    )
    status = models.CharField(
        _("status"),
        max_length=10,
        choices=RedemptionStatus.choices,
        default=RedemptionStatus.REQUESTED,
    )
    contract_ref = models.CharField(_("contract reference"), max_length=100)
    amount_cap = money_field(_("cap"), null=True, blank=True)
    covered_total = money_field(_("covered so far"), default=0)
    reason = models.CharField(_("reason"), max_length=300, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    # Not indexed: every applied batch moves `covered_total` and `updated_at` of the
    # redemptions it charges, and an unindexed row can be updated in place (HOT).
    # `updated_since` filters within one data center's redemptions (its own index).
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("redemption")
        verbose_name_plural = _("redemptions")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["data_center", "status"], name="redemption_dc_status"),
            models.Index(fields=["voucher", "data_center"], name="redemption_voucher_dc"),
        ]
        constraints = [
            # One live binding per voucher and data center: usage finds it unambiguously.
            models.UniqueConstraint(
                fields=["voucher", "data_center"],
                condition=Q(status__in=["requested", "active"]),
                name="redemption_one_live_per_voucher_dc",
            ),
            models.CheckConstraint(
                condition=Q(amount_cap__isnull=True) | Q(covered_total__lte=models.F("amount_cap")),
                name="redemption_within_cap",
            ),
        ]

    def __str__(self) -> str:
        return f"R{self.pk}"

    @property
    def cap_left(self):
        return None if self.amount_cap is None else self.amount_cap - self.covered_total


class BatchStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    PROCESSING = "processing", _("Processing")
    DONE = "done", _("Done")
    # Could not be applied after its retries (a fault, not a bad record: bad records
    # are rejected one by one). The sweeper leaves it alone; a person retries it.
    FAILED = "failed", _("Failed")


# Batches a worker may still have to apply (the sweeper's and the pending index's set).
BATCH_PENDING = (BatchStatus.QUEUED, BatchStatus.PROCESSING)


class BatchSource(models.TextChoices):
    PUSH = "push", _("Pushed")
    PULL = "pull", _("Pulled")


class UsageBatch(models.Model):
    """A batch of usage records exactly as received, stored before the API answers.

    `body` keeps the request body as sent (`compute.ingest.body_records` reads its
    records); `results_json` is filled by the worker in one write, in the order sent.
    `idempotency_key` + `body_hash` (SHA-256 of the bytes) implement docs/api.md's header.
    """

    data_center = models.ForeignKey(DataCenter, on_delete=models.PROTECT, related_name="batches")
    source = models.CharField(max_length=4, choices=BatchSource.choices, default=BatchSource.PUSH)
    status = models.CharField(
        _("status"), max_length=10, choices=BatchStatus.choices, default=BatchStatus.QUEUED
    )
    idempotency_key = models.CharField(max_length=200, blank=True)
    body_hash = models.CharField(max_length=64)
    received = models.PositiveIntegerField(_("received"))
    # The request body exactly as received (`{"records": [...]}`), as text, not jsonb:
    # text stores any JSON (jsonb refuses \u0000, which a client may send and must get
    # back as a per-record rejection) and keeps numbers exactly as written. Compressed
    # with LZ4 where the server has it (migration 0011: cheaper to write and read than
    # uncompressed; pglz cost more than either).
    body = models.TextField(default='{"records": []}')
    # The per-record results of docs/api.md as JSON text, written once by the worker in one
    # statement and read back whole; compressed like `body`.
    results_json = models.TextField(default="[]")
    accepted = models.PositiveIntegerField(_("accepted"), default=0)
    duplicate = models.PositiveIntegerField(_("duplicates"), default=0)
    rejected = models.PositiveIntegerField(_("rejected"), default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    # Why a `failed` batch was given up (the last error, for staff and the data center).
    failure_reason = models.CharField(_("failure reason"), max_length=500, blank=True)
    # Set once its task is on the broker: a batch committed while Redis was down has
    # none, and the sweeper enqueues it (the outbox) within a minute of Redis returning.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(_("received at"), auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("usage batch")
        verbose_name_plural = _("usage batches")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["created_at"],
                name="batch_pending_by_age",
                condition=Q(status__in=BATCH_PENDING),
            ),
            models.Index(fields=["data_center", "-created_at"], name="batch_dc_created"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["data_center", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="batch_idempotency_key_once",
            ),
        ]

    def __str__(self) -> str:
        return f"B{self.pk}"

    @property
    def results(self) -> list[dict]:
        return orjson.loads(self.results_json)


class RecordStatus(models.TextChoices):
    ACCEPTED = "accepted", _("Accepted")
    VOID = "void", _("Void")


class UsageRecord(models.Model):
    """An accepted usage record: what was charged to which voucher. Rejected records
    live only in their batch's results. `(data_center, record_id)` is the idempotency
    key shared by pushed and pulled records."""

    # Hot path: every index costs on each of millions of inserts. The FK columns below
    # are looked up through the composite indexes in Meta (or not at all), so they carry
    # no single-column index of their own. None of them is checked by a database
    # constraint either: usage records are only ever written by `compute.ingest`, by one
    # COPY of ids it has just read (the voucher's and redemption's are checked again
    # under their locks in the same transaction), and none of them can be deleted
    # (PROTECT, append-only ledger); the per-row checks at commit cost a third of
    # applying a batch. (`verify_ledger` reports ledger entries whose voucher is
    # missing; every charged record has one.)
    data_center = models.ForeignKey(
        DataCenter, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    record_id = models.CharField(max_length=64)
    batch = models.ForeignKey(
        UsageBatch,
        on_delete=models.PROTECT,
        related_name="usage_records",
        db_index=False,
        db_constraint=False,
    )
    voucher = models.ForeignKey(
        Voucher,
        on_delete=models.PROTECT,
        related_name="usage_records",
        db_index=False,
        db_constraint=False,
    )
    redemption = models.ForeignKey(
        Redemption,
        on_delete=models.PROTECT,
        related_name="usage_records",
        db_index=False,
        db_constraint=False,
    )
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField()
    resource = models.CharField(max_length=64)
    domestic = models.BooleanField()
    quantity = models.DecimalField(max_digits=14, decimal_places=3)
    amount = money_field(_("list price"))
    covered_amount = money_field(_("covered"))
    # The database's defaults fill the columns `compute.ingest` leaves out of its COPY
    # (fewer fields to parse per row; the same values).
    status = models.CharField(
        max_length=10,
        choices=RecordStatus.choices,
        default=RecordStatus.ACCEPTED,
        db_default=RecordStatus.ACCEPTED,
    )
    reversal_entry = models.ForeignKey(
        LedgerEntry,
        on_delete=models.PROTECT,
        null=True,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    void_reason = models.CharField(max_length=300, blank=True, db_default="")
    # Charged but not paid to the data center: an integrity check flagged it and its
    # program holds such charges until staff decide (compute/integrity/). Settlements
    # leave it out; clearing the finding releases it, confirming voids it.
    held = models.BooleanField(_("held"), default=False, db_default=False)
    created_at = models.DateTimeField(db_default=Now())  # the COPY statement's time
    voided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("usage record")
        verbose_name_plural = _("usage records")
        # Partitioned by month of `ended_at` (migration 0020, which justifies the
        # indexes): the primary key is (id, ended_at) there, `id` here; the key
        # (data_center, record_id) is held unique by `UsageRecordKey`.
        indexes = [
            models.Index(fields=["data_center", "id"], name="usage_dc_id"),
            models.Index(fields=["voucher", "data_center"], name="usage_voucher_dc"),
        ]

    def __str__(self) -> str:
        return self.record_id

    def save(self, *args, **kwargs) -> None:
        """A record made one at a time (tests, fixtures) gets its key with it; ingestion
        and seed_scale write both by COPY instead (compute/ingest/keys.py)."""
        if not self._state.adding:
            super().save(*args, **kwargs)
            return
        with transaction.atomic():
            super().save(*args, **kwargs)
            UsageRecordKey.objects.create(
                data_center_id=self.data_center_id,
                record_id=self.record_id,
                usage_record_id=self.pk,
                ended_at=self.ended_at,
            )


class SyncOutcome(models.TextChoices):
    RUNNING = "running", _("Running")
    OK = "ok", _("Succeeded")
    FAILED = "failed", _("Failed")
    SKIPPED = "skipped", _("Skipped (another sync was running)")


class SyncRun(models.Model):
    """One pull of a data center's feed."""

    data_center = models.ForeignKey(DataCenter, on_delete=models.CASCADE, related_name="sync_runs")
    started_at = models.DateTimeField(_("started at"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    pages = models.PositiveIntegerField(_("pages"), default=0)
    records = models.PositiveIntegerField(_("records"), default=0)
    outcome = models.CharField(
        _("outcome"), max_length=10, choices=SyncOutcome.choices, default=SyncOutcome.RUNNING
    )
    error = models.TextField(_("error"), blank=True)

    class Meta:
        verbose_name = _("sync run")
        verbose_name_plural = _("sync runs")
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["data_center", "-started_at"], name="syncrun_dc_started")]

    def __str__(self) -> str:
        return f"sync {self.pk}"


class Discrepancy(models.Model):
    """Something the nightly reconciliation found that does not add up."""

    city = models.ForeignKey(
        City, on_delete=models.CASCADE, null=True, blank=True, related_name="discrepancies"
    )
    data_center = models.ForeignKey(
        DataCenter, on_delete=models.CASCADE, null=True, blank=True, related_name="discrepancies"
    )
    voucher = models.ForeignKey(
        Voucher, on_delete=models.CASCADE, null=True, blank=True, related_name="discrepancies"
    )
    kind = models.CharField(_("kind"), max_length=40)
    detail = models.TextField(_("detail"))
    found_at = models.DateTimeField(_("found at"), auto_now_add=True)
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)

    class Meta:
        verbose_name = _("discrepancy")
        verbose_name_plural = _("discrepancies")
        ordering = ["-found_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail[:40]}"


class SettlementStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    ISSUED = "issued", _("Issued")
    CONFIRMED = "confirmed", _("Confirmed")
    PAID = "paid", _("Paid")


class Settlement(models.Model):
    """What a city owes a data center for one month of covered usage."""

    city = models.ForeignKey(City, on_delete=models.PROTECT, related_name="settlements")
    data_center = models.ForeignKey(
        DataCenter, on_delete=models.PROTECT, related_name="settlements"
    )
    period = models.DateField(_("period"), help_text=_("The first day of the month."))
    status = models.CharField(
        _("status"),
        max_length=10,
        choices=SettlementStatus.choices,
        default=SettlementStatus.DRAFT,
    )
    records = models.PositiveIntegerField(_("records"), default=0)
    amount_total = money_field(_("list price total"), default=0)
    covered_total = money_field(_("covered total"), default=0)
    issued_at = models.DateTimeField(_("issued at"), null=True, blank=True)
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    confirmed_at = models.DateTimeField(_("confirmed at"), null=True, blank=True)
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)
    paid_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    payment_ref = models.CharField(_("payment reference"), max_length=100, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("settlement")
        verbose_name_plural = _("settlements")
        ordering = ["-period", "city", "data_center"]
        constraints = [
            models.UniqueConstraint(
                fields=["city", "data_center", "period"], name="settlement_once_per_month"
            ),
            models.CheckConstraint(condition=Q(period__day=1), name="settlement_period_first_day"),
        ]

    def __str__(self) -> str:
        return f"{self.city_id}/{self.data_center_id}/{self.period:%Y-%m}"


class LineKind(models.TextChoices):
    USAGE = "usage", _("Usage")
    ADJUSTMENT = "adjustment", _("Adjustment")


class SettlementLine(models.Model):
    """One usage record in a statement, or an adjustment for a record voided after its
    month's statement was issued (issued statements never change)."""

    settlement = models.ForeignKey(Settlement, on_delete=models.CASCADE, related_name="lines")
    kind = models.CharField(
        _("kind"), max_length=12, choices=LineKind.choices, default=LineKind.USAGE
    )
    # No database constraint: a foreign key to a partitioned table must name its whole
    # primary key (id, ended_at), and a line's record may be archived (detached) while
    # the statement stays. The line keeps its own copy of what it bills (record_id,
    # voucher, amounts); lines are written only by `compute.settlements`, from records
    # it reads in the same statement, and records are never deleted once charged.
    usage_record = models.ForeignKey(
        UsageRecord, on_delete=models.PROTECT, related_name="settlement_lines", db_constraint=False
    )
    record_id = models.CharField(_("record"), max_length=64)
    voucher_code = models.CharField(_("voucher"), max_length=24)
    amount = money_field(_("list price"))
    covered_amount = money_field(_("covered"))

    class Meta:
        verbose_name = _("settlement line")
        verbose_name_plural = _("settlement lines")
        ordering = ["settlement", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["usage_record", "kind"], name="settlement_line_once_per_kind"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.record_id} {self.covered_amount}"


# The integrity checks' declarations and findings (compute/integrity/).
from compute.integrity.models import (  # noqa: E402, F401
    Finding,
    FindingRecord,
    FindingRule,
    FindingStatus,
    IntegrityRules,
    Inventory,
    PriceBand,
    RelatedParty,
    Severity,
)

# The usage records' key table and archived months (the table is partitioned by month).
from compute.partition_models import UsageArchive, UsageRecordKey  # noqa: E402, F401

# The dashboards' rollups live in a module of their own (this one is long enough).
from compute.rollup_models import (  # noqa: E402, F401
    CompanyUsage,
    IngestDay,
    ProgramUsageDay,
)
