"""Decision letters (通知书): each approval, rejection and not-recommended decision gets
one, and so does each accepted outcome report (验收通知书), rendered from its program's
template into a PDF, numbered per city and year without gaps, and never changed once
issued (a database trigger refuses it)."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from portal.models import City
from vouchers.models.applications import Application
from vouchers.models.programs import Program


class LetterKind(models.TextChoices):
    APPROVAL = "approval", _("Approval letter")
    REJECTION = "rejection", _("Rejection letter")
    NOT_RECOMMENDED = "not_recommended", _("Not-recommended letter")
    # 验收通知书: an outcome report accepted (vouchers.services.outcomes).
    OUTCOME_ACCEPTED = "outcome_accepted", _("Outcome acceptance letter")


class LetterTemplate(models.Model):
    """A program's wording of one kind of letter, in both languages. Programs without
    one use the built-in wording (`vouchers.letters.DEFAULT_TEMPLATES`)."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="letter_templates")
    kind = models.CharField(_("kind"), max_length=20, choices=LetterKind.choices)
    title_zh = models.CharField(_("title (Chinese)"), max_length=200)
    body_zh = models.TextField(_("body (Chinese)"))
    title_en = models.CharField(_("title (English)"), max_length=200)
    body_en = models.TextField(_("body (English)"))
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("letter template")
        verbose_name_plural = _("letter templates")
        constraints = [
            models.UniqueConstraint(fields=["program", "kind"], name="letter_template_once")
        ]

    def __str__(self) -> str:
        return f"{self.program_id}:{self.kind}"


class LetterNumber(models.Model):
    """The last document number a city issued in a year. Taken by an `UPDATE … RETURNING`
    in the decision's transaction, so numbers are unique and, since a rolled-back
    decision rolls its number back too, without gaps."""

    city = models.ForeignKey(City, on_delete=models.PROTECT, related_name="+")
    year = models.PositiveSmallIntegerField()
    last = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = _("letter number")
        verbose_name_plural = _("letter numbers")
        constraints = [
            models.UniqueConstraint(fields=["city", "year"], name="letter_number_per_city_year")
        ]

    def __str__(self) -> str:
        return f"{self.city_id}/{self.year}: {self.last}"


class DecisionLetter(models.Model):
    """An issued letter: the text as rendered, the PDF's bytes and their SHA-256.
    Immutable (trigger `vouchers_decisionletter_immutable`): a later template change
    never touches it."""

    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="letters")
    city = models.ForeignKey(City, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(_("kind"), max_length=20, choices=LetterKind.choices)
    number = models.CharField(_("document number"), max_length=24, unique=True)
    year = models.PositiveSmallIntegerField()
    sequence = models.PositiveIntegerField()
    language = models.CharField(_("language"), max_length=10)
    title = models.CharField(_("title"), max_length=300)
    body = models.TextField(_("body"))
    pdf = models.BinaryField()
    sha256 = models.CharField(max_length=64)
    issued_at = models.DateTimeField(_("issued at"), auto_now_add=True)

    class Meta:
        verbose_name = _("decision letter")
        verbose_name_plural = _("decision letters")
        ordering = ["issued_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["city", "year", "sequence"], name="letter_sequence_per_city_year"
            )
        ]

    def __str__(self) -> str:
        return self.number
