"""What the vouchers app's models share: money fields, localised names, document types."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db import models
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

ZERO = Decimal("0.00")


def money_field(verbose_name: StrOrPromise, **kwargs: Any) -> models.DecimalField:
    """Yuan with two decimals; up to ¥999,999,999,999.99."""
    return models.DecimalField(verbose_name, max_digits=14, decimal_places=2, **kwargs)


def _localised(obj: models.Model, field: str) -> str:
    zh = (get_language() or "zh").startswith("zh")
    return getattr(obj, f"{field}_zh" if zh else f"{field}_en") or getattr(obj, f"{field}_zh")


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
