"""The program editor's rows: the scoring rubric, the required documents and the
eligibility rules, each a formset of small forms instead of JSON text (issue #13 item 7).

Every row is checked on its own field (a rule's parameter by the bounds of its rule type,
`eligibility.PARAMETERS`), so one page shows every mistake at once; each formset turns
its rows, in the order chosen, back into the list `Program` stores, and an unchanged
program comes back exactly as it was saved (`program_rows_initial` ↔ `*_value`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django import forms
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

from portal.forms import FiniteDecimalField
from vouchers import eligibility
from vouchers.models import DOCUMENT_TYPES
from vouchers.services.programs import (
    MAX_REQUIRED_DOCUMENTS,
    RUBRIC_MAX_CRITERIA,
    RUBRIC_MAX_POINTS,
    RUBRIC_MAX_WEIGHT,
)

# The Program fields the rows edit (the rest are ProgramForm's).
ROW_FIELDS = ("rubric", "required_documents", "eligibility_rules")
CUSTOM = "__custom__"
# Blank rows offered below the saved ones: enough to add a few without script.
EXTRA_ROWS = 2


def _json_number(value: Decimal) -> int | str:
    """A whole number as a JSON integer, a fraction as exact text (never a float)."""
    if value == value.to_integral_value():
        return int(value)
    return str(value.normalize())


class RowForm(forms.Form):
    def has_changed(self) -> bool:
        """Whether a row offered blank was filled in: judged by what was posted, not
        against the formset's initial rows (which Django lends to a blank row in the same
        place), and a position alone (the script numbers every row) leaves it blank."""
        if not self.empty_permitted:
            return bool(set(self.changed_data) - {"ORDER", "DELETE"})
        return any(
            self[name].data not in (None, "", [], False)
            for name in self.fields
            if name not in ("ORDER", "DELETE")
        )


class RubricRowForm(RowForm):
    name = forms.CharField(label=_("Criterion"), max_length=100)
    # Shown on English pages (issue #14 item 2); the criterion's key in reviews stays `name`.
    name_en = forms.CharField(label=_("Criterion (English)"), max_length=100, required=False)
    weight = FiniteDecimalField(
        label=_("Weight"),
        max_value=RUBRIC_MAX_WEIGHT,
        max_digits=6,
        decimal_places=2,
    )
    max = forms.IntegerField(label=_("Maximum points"), min_value=1, max_value=RUBRIC_MAX_POINTS)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # In the reader's language: a lazy string formatted at import would not be.
        self.fields["weight"].help_text = _("Above 0, at most %(n)s.") % {"n": RUBRIC_MAX_WEIGHT}

    def clean_name(self) -> str:
        return self.cleaned_data["name"].strip()

    def clean_name_en(self) -> str:
        return self.cleaned_data["name_en"].strip()

    def clean_weight(self) -> Decimal:
        weight = self.cleaned_data["weight"]
        if weight <= 0:
            raise forms.ValidationError(_("A weight is above 0."))
        return weight

    def value(self) -> dict:
        weight = self.cleaned_data["weight"]
        # rubric_problem and the scoring read weights as JSON numbers.
        number = int(weight) if weight == weight.to_integral_value() else float(weight)
        row = {"name": self.cleaned_data["name"], "weight": number, "max": self.cleaned_data["max"]}
        if self.cleaned_data["name_en"]:
            row["name_en"] = self.cleaned_data["name_en"]
        return row


class DocumentRowForm(RowForm):
    doc_type = forms.ChoiceField(label=_("Document type"))
    custom = forms.CharField(
        label=_("Identifier of another type"),
        max_length=60,
        required=False,
        help_text=_("Only with “Another type”, e.g. environmental_permit."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["doc_type"].choices = [
            ("", "—"),
            *((key, label) for key, label in DOCUMENT_TYPES.items() if key != "other"),
            (CUSTOM, _("Another type (write its identifier)")),
        ]

    def clean(self) -> dict:
        data: dict[str, Any] = super().clean() or self.cleaned_data
        kind, custom = data.get("doc_type"), (data.get("custom") or "").strip()
        if kind == CUSTOM and not custom:
            self.add_error("custom", _("Write the identifier of the document type."))
        elif kind and kind != CUSTOM and custom:
            self.add_error("custom", _("Leave this empty, or choose “Another type”."))
        data["custom"] = custom
        return data

    def value(self) -> str:
        kind = self.cleaned_data["doc_type"]
        return self.cleaned_data["custom"] if kind == CUSTOM else kind


def _parameter_field(rule: str, name: str, label) -> forms.Field:
    """A rule parameter's field, bounded as the engine bounds it (eligibility.PARAMETERS)."""
    spec = eligibility.PARAMETERS[rule][name]
    if spec.kind is int:
        return forms.IntegerField(
            label=label, min_value=int(spec.low), max_value=int(spec.high), required=False
        )
    return FiniteDecimalField(
        label=label,
        min_value=spec.low,
        max_value=spec.high,
        max_digits=len(str(int(spec.high))) + 2,
        decimal_places=2,
        required=False,
    )


class RuleRowForm(RowForm):
    """One rule: its type and the parameter of that type (the others stay empty)."""

    # form field → (rule type, parameter name)
    PARAMETER_FIELDS = {
        "years": ("founded_within_years", "years"),
        "max_headcount": ("max_headcount", "max"),
        "max_revenue": ("max_revenue", "max"),
        "cap": ("within_company_yearly_cap", "cap"),
    }

    type = forms.ChoiceField(label=_("Rule"))
    years = _parameter_field("founded_within_years", "years", _("Years (1–100)"))
    max_headcount = _parameter_field("max_headcount", "max", _("Most employees"))
    max_revenue = _parameter_field("max_revenue", "max", _("Most revenue (yuan)"))
    cap = _parameter_field("within_company_yearly_cap", "cap", _("Cap (yuan)"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["type"].choices = [("", "—"), *eligibility.RULE_LABELS.items()]
        for name, (rule, _parameter) in self.PARAMETER_FIELDS.items():
            self.fields[name].widget.attrs["data-rule"] = rule
        self.fields["years"].help_text = _("Empty: 5 years.")
        self.fields["max_headcount"].help_text = _("Empty: 500.")
        self.fields["max_revenue"].help_text = _("Empty: ¥100,000,000.")
        self.fields["cap"].help_text = _("Empty: the program's yearly cap per company.")

    def clean(self) -> dict:
        data: dict[str, Any] = super().clean() or self.cleaned_data
        kind = data.get("type")
        for name, (rule, _parameter) in self.PARAMETER_FIELDS.items():
            if kind and rule != kind and data.get(name) is not None:
                self.add_error(
                    name,
                    _("This applies only to the rule “%(rule)s”; leave it empty.")
                    % {"rule": eligibility.RULE_LABELS[rule]},
                )
        return data

    def value(self) -> dict:
        rule = {"type": self.cleaned_data["type"]}
        for name, (kind, parameter) in self.PARAMETER_FIELDS.items():
            value = self.cleaned_data.get(name)
            if kind == rule["type"] and value is not None:
                rule[parameter] = _json_number(Decimal(value))
        return rule


class RowFormSet(forms.BaseFormSet):
    """Rows in the order chosen (the ORDER field, or as listed), without deleted or
    blank ones; a duplicate is an error on the row that repeats."""

    duplicate_message: StrOrPromise = ""

    def rows(self) -> list[forms.Form]:
        # Saved rows count even unchanged; a blank row offered below them does not.
        kept = [
            form
            for i, form in enumerate(self.forms)
            if (i < self.initial_form_count() or form.has_changed())
            and not self._should_delete_form(form)  # type: ignore[attr-defined]
            and form.is_valid()
        ]
        position = {id(form): i for i, form in enumerate(self.forms)}
        return sorted(
            kept,
            key=lambda f: (
                f.cleaned_data.get("ORDER") is None,
                f.cleaned_data.get("ORDER") or 0,
                position[id(f)],
            ),
        )

    def key(self, form: forms.Form) -> object:
        return None

    def clean(self) -> None:
        if any(self.errors):
            return
        seen: set = set()
        for form in self.rows():
            key = self.key(form)
            if key is not None and key in seen:
                form.add_error(None, self.duplicate_message)
            seen.add(key)

    def value(self) -> list:
        return [form.value() for form in self.rows()]  # type: ignore[attr-defined]


class RubricFormSet(RowFormSet):
    duplicate_message = _("Each criterion needs a name of its own.")

    def key(self, form):
        return form.cleaned_data["name"]


class DocumentFormSet(RowFormSet):
    duplicate_message = _("This document type is listed already.")

    def key(self, form):
        return form.value()


class RuleFormSet(RowFormSet):
    pass


def _formset(form, base, most: int):
    return forms.formset_factory(
        form,
        formset=base,
        extra=EXTRA_ROWS,
        can_order=True,
        can_delete=True,
        max_num=most,
        validate_max=True,
        absolute_max=most + EXTRA_ROWS,
    )


RubricRows = _formset(RubricRowForm, RubricFormSet, RUBRIC_MAX_CRITERIA)
DocumentRows = _formset(DocumentRowForm, DocumentFormSet, MAX_REQUIRED_DOCUMENTS)
RuleRows = _formset(RuleRowForm, RuleFormSet, len(eligibility.CATALOGUE) * 2)


def _document_initial(doc_type: str) -> dict:
    if doc_type in DOCUMENT_TYPES and doc_type != "other":
        return {"doc_type": doc_type}
    return {"doc_type": CUSTOM, "custom": doc_type}


def _rule_initial(rule: dict) -> dict:
    row = {"type": rule.get("type")}
    for name, (kind, parameter) in RuleRowForm.PARAMETER_FIELDS.items():
        if rule.get("type") == kind and parameter in rule:
            row[name] = rule[parameter]
    return row


def program_rows(program=None, data=None) -> dict[str, RowFormSet]:
    """The three formsets of the editor, bound to `data` or filled from `program`."""
    rubric = list(getattr(program, "rubric", None) or [])
    documents = list(getattr(program, "required_documents", None) or [])
    rules = list(getattr(program, "eligibility_rules", None) or [])

    def ordered(rows: list[dict]) -> list[dict]:
        return [{**row, "ORDER": i + 1} for i, row in enumerate(rows)]

    return {
        "rubric": RubricRows(
            data,
            prefix="rubric",
            initial=ordered(
                [
                    {k: c.get(k) for k in ("name", "name_en", "weight", "max")}
                    for c in rubric
                    if isinstance(c, dict)
                ]
            ),
        ),
        "required_documents": DocumentRows(
            data, prefix="docs", initial=ordered([_document_initial(d) for d in documents])
        ),
        "eligibility_rules": RuleRows(
            data,
            prefix="rules",
            initial=ordered([_rule_initial(r) for r in rules if isinstance(r, dict)]),
        ),
    }
