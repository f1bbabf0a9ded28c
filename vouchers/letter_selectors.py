"""Reads of decision letters (the selectors of `vouchers.letters`): the caller scopes the
application to the reader first (`vouchers.selectors.application_get` with the user or
the city), so another company's or city's letter is a 404 by construction."""

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from vouchers.models import Application, DecisionLetter, LetterTemplate, Program


def letter_list(*, application: Application) -> QuerySet[DecisionLetter]:
    """An application's decision letters, oldest first, without their PDFs."""
    return DecisionLetter.objects.filter(application=application).defer("pdf").order_by("id")


def letter_get(*, application: Application, pk: int) -> DecisionLetter:
    return get_object_or_404(DecisionLetter, application=application, pk=pk)


def letter_template_list(*, program: Program) -> dict[str, LetterTemplate]:
    """The program's own templates by kind (kinds without one use the built-in wording)."""
    return {t.kind: t for t in LetterTemplate.objects.filter(program=program)}
