"""Outcome reports (成果报告, 验收): what a company did with its voucher, reported when the
program says (at the voucher's end and, if the program sets one, mid-term), accepted or
returned with comments by the city's program manager. The states and who moves them are
one table, `vouchers.outcomes.TRANSITIONS`."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from portal.models import City
from vouchers.models.applications import UploadedDocument
from vouchers.models.ledger import Voucher
from vouchers.models.letters import DecisionLetter
from vouchers.models.programs import Company, Program


class OutcomeStage(models.TextChoices):
    MIDTERM = "midterm", _("Mid-term report")
    FINAL = "final", _("Final report")


class OutcomeState(models.TextChoices):
    DRAFT = "draft", _("Draft")
    SUBMITTED = "submitted", _("Submitted")
    RETURNED = "returned", _("Returned for changes")
    RESUBMITTED = "resubmitted", _("Resubmitted")
    ACCEPTED = "accepted", _("Accepted")


# What the company still owes: the report is with it (never sent, or sent back).
OUTCOME_OPEN_STATES = frozenset({OutcomeState.DRAFT, OutcomeState.RETURNED})
# What waits for the program manager.
OUTCOME_WAITING_STATES = frozenset({OutcomeState.SUBMITTED, OutcomeState.RESUBMITTED})

OUTCOME_DOCUMENT_TYPES = {
    "outcome_report": _("Outcome report"),
    "technical_report": _("Technical report or model card"),
    "benchmark_results": _("Benchmark results"),
    "paper": _("Paper or patent"),
    "product_evidence": _("Product evidence (launch, contract, screenshot)"),
    "other": _("Other"),
}


class OutcomeReport(models.Model):
    """One report of one voucher at one stage. Created when the voucher is issued (or by
    the nightly job for vouchers issued before the program asked for reports), due on
    `due_on` (the city's date)."""

    city = models.ForeignKey(City, on_delete=models.PROTECT, related_name="+")
    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="outcome_reports")
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="outcome_reports")
    voucher = models.ForeignKey(Voucher, on_delete=models.PROTECT, related_name="outcome_reports")
    stage = models.CharField(_("stage"), max_length=10, choices=OutcomeStage.choices)
    due_on = models.DateField(_("due on"))
    state = models.CharField(
        _("state"), max_length=12, choices=OutcomeState.choices, default=OutcomeState.DRAFT
    )
    # What the company built, as figures the dashboard adds up, and in words.
    models_trained = models.PositiveIntegerField(_("models trained or fine-tuned"), default=0)
    largest_model_parameters = models.DecimalField(
        _("parameters of the largest model (billions)"),
        max_digits=10,
        decimal_places=2,
        null=True,
        blank=True,
    )
    benchmarks = models.TextField(_("benchmarks and results"), blank=True)
    products_launched = models.PositiveIntegerField(_("products or services launched"), default=0)
    papers_published = models.PositiveIntegerField(_("papers and patents"), default=0)
    hires = models.PositiveIntegerField(_("people hired"), default=0)
    summary = models.TextField(_("what was achieved"), blank=True)
    # The usage as the ledger had it when the report was (last) submitted: a list of
    # {"data_center", "accelerator", "domestic", "quantity", "amount", "covered"}, plus the
    # ledger's totals (vouchers.outcome_usage). Figures are strings, exact to the fen.
    usage_summary = models.JSONField(_("usage summary"), default=dict, blank=True)
    # The program manager's latest comment (each one is also in the report's timeline).
    review_comment = models.TextField(_("comments of the program manager"), blank=True)
    submitted_at = models.DateTimeField(_("submitted at"), null=True, blank=True)
    decided_at = models.DateTimeField(_("accepted at"), null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # The acceptance letter (验收通知书), issued with the acceptance when the voucher
    # came from an application (whose letters it joins).
    letter = models.OneToOneField(
        DecisionLetter, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("outcome report")
        verbose_name_plural = _("outcome reports")
        ordering = ["due_on", "id"]
        constraints = [
            models.UniqueConstraint(fields=["voucher", "stage"], name="outcome_report_once"),
            models.CheckConstraint(
                condition=Q(largest_model_parameters__isnull=True)
                | Q(largest_model_parameters__gte=0),
                name="outcome_parameters_ge_0",
            ),
        ]
        indexes = [
            models.Index(fields=["city", "state"], name="outcome_city_state"),
            models.Index(fields=["company", "state", "due_on"], name="outcome_company_due"),
            models.Index(fields=["program", "state"], name="outcome_program_state"),
        ]

    def __str__(self) -> str:
        return f"{self.voucher_id}:{self.stage}"


class OutcomeChange(models.Model):
    """The report's timeline: each step with its comment (a return's reasons stay after
    the company resubmits)."""

    report = models.ForeignKey(OutcomeReport, on_delete=models.CASCADE, related_name="timeline")
    from_state = models.CharField(max_length=12)
    to_state = models.CharField(max_length=12)
    actor_label = models.CharField(max_length=200)
    comment = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("outcome report change")
        verbose_name_plural = _("outcome report changes")
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.from_state} → {self.to_state}"

    @property
    def to_state_label(self) -> str:
        return str(OutcomeState(self.to_state).label)


def _outcome_document_path(instance: OutcomeDocument, filename: str) -> str:
    # Never the client's file name on disk.
    return f"outcomes/{instance.report_id}/{secrets.token_hex(16)}"


class OutcomeDocument(UploadedDocument):
    """A file attached to an outcome report: checked as an application's documents are
    (PDF, PNG or JPEG by content, at most 20 MB), downloaded only through views."""

    report = models.ForeignKey(OutcomeReport, on_delete=models.CASCADE, related_name="documents")
    file = models.FileField(upload_to=_outcome_document_path)

    class Meta(UploadedDocument.Meta):
        verbose_name = _("outcome document")
        verbose_name_plural = _("outcome documents")

    @property
    def doc_type_label(self) -> str:
        return str(OUTCOME_DOCUMENT_TYPES.get(self.doc_type, self.doc_type))
