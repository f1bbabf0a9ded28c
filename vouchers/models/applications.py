"""Applications and what happens to them: the compute plan, documents, eligibility
outcomes, reviews, information requests, objections, the timeline and reminders."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from portal.models import City
from vouchers.models.base import _localised, document_type_label, money_field
from vouchers.models.programs import Company, Program


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
    # Approved with an acceptance step (Program.acceptance_days): the award is reserved
    # from the budget and the company accepts (voucher issued) or declines it.
    AWARDED = "awarded", _("Awarded, awaiting acceptance")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    WITHDRAWN = "withdrawn", _("Withdrawn")
    # The company declined the award, or let the acceptance window pass: the amount
    # went back to the program's budget.
    DECLINED = "declined", _("Award declined")
    LAPSED = "lapsed", _("Award lapsed")


# The states of an application on its way to a decision: every work list's rows are in
# one of them (vouchers.worklists).
IN_PROCESS_STATES = [
    ApplicationState.SUBMITTED.value,
    ApplicationState.SCREENING.value,
    ApplicationState.IN_REVIEW.value,
    ApplicationState.TIE_BREAK.value,
    ApplicationState.INFO_REQUESTED.value,
    ApplicationState.RECOMMENDED.value,
    ApplicationState.NOT_RECOMMENDED.value,
    ApplicationState.IN_NOTICE.value,
]

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
    # Why the approver awarded less than requested (required then).
    award_reason = models.TextField(_("reason for the award"), blank=True)
    # The end of the acceptance window of an award (state awarded).
    award_expires_at = models.DateTimeField(_("accept by"), null=True, blank=True)
    award_answered_at = models.DateTimeField(_("award answered at"), null=True, blank=True)
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
            # The queue's default order (newest first, scanned backwards) and the work
            # lists' (longest waiting first): a page without sorting the city.
            models.Index(fields=["city", "submitted_at", "id"], name="application_city_submitted"),
            # The staff home's work lists, longest waiting first: only the applications
            # in the workflow (not the decided ones, which pile up over the years).
            models.Index(
                fields=["city", "submitted_at", "id"],
                name="application_in_process",
                condition=models.Q(state__in=IN_PROCESS_STATES),
            ),
            # The public results: a program's awards by decision date, and their count
            # and sum from the index alone.
            models.Index(
                fields=["program", "state", "decided_at", "id"],
                name="application_decided",
                include=["awarded_amount", "notice_ends_at"],
            ),
        ]

    def __str__(self) -> str:
        return f"A{self.pk} {self.title}"


class ProgramStateCount(models.Model):
    """How many of a program's applications are in each state, kept by PostgreSQL: a
    trigger on the applications (migration 0014) adds each statement's changes within
    its transaction, so the figures are exact at every commit whatever wrote the rows
    (the services, a bulk load, the admin). The row with `state` "" is the program's
    own: all its applications, and `changes`, which moves whenever one of them changes
    state, submission or decision time (a cache key for figures derived from those).
    The dashboards, the queue and the staff home count here instead of counting a
    city's applications on every request."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=20, blank=True)
    n = models.BigIntegerField(default=0)
    changes = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = _("applications in a state")
        verbose_name_plural = _("applications by state")
        constraints = [
            models.UniqueConstraint(fields=["program", "state"], name="program_state_count_key")
        ]

    def __str__(self) -> str:
        return f"{self.program_id} {self.state or '*'}: {self.n}"


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
class UploadedDocument(models.Model):
    """What every uploaded file records beside its owner and its place on disk (an
    application's documents, an outcome report's): type, name as sent, checked content
    type and size, who uploaded it and when."""

    doc_type = models.CharField(_("document type"), max_length=60)
    original_name = models.CharField(_("file name"), max_length=200)
    content_type = models.CharField(max_length=40)
    size = models.PositiveIntegerField(_("size"))
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    uploaded_at = models.DateTimeField(_("uploaded at"), auto_now_add=True)

    class Meta:
        abstract = True
        ordering = ["doc_type", "id"]

    def __str__(self) -> str:
        return self.original_name


class Document(UploadedDocument):
    """A file the applicant uploaded. Stored under MEDIA_ROOT, never served statically:
    downloads go through a view that checks access and audits staff downloads."""

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="documents")
    file = models.FileField(upload_to=_document_path)

    class Meta(UploadedDocument.Meta):
        verbose_name = _("document")
        verbose_name_plural = _("documents")

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
        verbose_name = _("eligibility outcome")
        verbose_name_plural = _("eligibility outcomes")
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
        verbose_name = _("info request")
        verbose_name_plural = _("info requests")
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
        verbose_name = _("objection")
        verbose_name_plural = _("objections")
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
        verbose_name = _("state change")
        verbose_name_plural = _("state changes")
        ordering = ["at", "id"]
        indexes = [
            # The answered information requests' work list starts from these few.
            models.Index(
                fields=["application"],
                name="statechange_info_answered",
                condition=models.Q(from_state="info_requested"),
            )
        ]

    def __str__(self) -> str:
        return f"{self.from_state} → {self.to_state}"

    @property
    def to_state_label(self) -> str:
        return ApplicationState(self.to_state).label  # type: ignore[return-value]

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
        verbose_name = _("reminder sent")
        verbose_name_plural = _("reminders sent")
        # Not "reminder_once": compute's table of the same purpose had that name once.
        constraints = [models.UniqueConstraint(fields=["kind", "key"], name="reminder_sent_once")]

    def __str__(self) -> str:
        return f"{self.kind}:{self.key}"
