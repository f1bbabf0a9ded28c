"""Forms of the outcome-report pages: the company's figures and text, a document, and the
program manager's decision."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from portal.forms import FiniteDecimalField
from vouchers.models import OUTCOME_DOCUMENT_TYPES, OutcomeState, Program
from vouchers.services.outcomes import MAX_PARAMETERS_BILLIONS, OUTCOME_COUNTS, OUTCOME_TEXTS


class OutcomeReportForm(forms.Form):
    models_trained = forms.IntegerField(
        label=_("Models trained or fine-tuned"),
        min_value=0,
        max_value=OUTCOME_COUNTS["models_trained"],
        required=False,
    )
    largest_model_parameters = FiniteDecimalField(
        label=_("Parameters of the largest model (billions)"),
        min_value=0,
        max_value=MAX_PARAMETERS_BILLIONS,
        max_digits=10,
        decimal_places=2,
        required=False,
        help_text=_("E.g. 7 for a 7B model; empty if no model was trained."),
    )
    benchmarks = forms.CharField(
        label=_("Benchmarks and results"),
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=OUTCOME_TEXTS["benchmarks"],
        required=False,
        help_text=_("One per line: the benchmark, the score, and how it compares."),
    )
    products_launched = forms.IntegerField(
        label=_("Products or services launched"),
        min_value=0,
        max_value=OUTCOME_COUNTS["products_launched"],
        required=False,
    )
    papers_published = forms.IntegerField(
        label=_("Papers and patents"),
        min_value=0,
        max_value=OUTCOME_COUNTS["papers_published"],
        required=False,
    )
    hires = forms.IntegerField(
        label=_("People hired"), min_value=0, max_value=OUTCOME_COUNTS["hires"], required=False
    )
    summary = forms.CharField(
        label=_("What was achieved"),
        widget=forms.Textarea(attrs={"rows": 6}),
        max_length=OUTCOME_TEXTS["summary"],
        required=False,
        help_text=_(
            "The models, products and research the compute paid for, and what comes next. "
            "Required to submit."
        ),
    )

    def values(self) -> dict:
        data = dict(self.cleaned_data)
        for name in OUTCOME_COUNTS:
            data[name] = data.get(name) or 0
        return data


class OutcomeDocumentForm(forms.Form):
    doc_type = forms.ChoiceField(
        label=_("Document type"), choices=list(OUTCOME_DOCUMENT_TYPES.items())
    )
    file = forms.FileField(label=_("File (PDF, PNG or JPEG, at most 20 MB)"))


class OutcomeDecisionForm(forms.Form):
    comment = forms.CharField(
        label=_("Comments to the company"),
        widget=forms.Textarea(attrs={"rows": 4}),
        max_length=5000,
        required=False,
        help_text=_("Required to return the report: say what to change."),
    )


class OutcomeQueueForm(forms.Form):
    show = forms.ChoiceField(
        label=_("Show"),
        required=False,
        choices=[
            ("", _("All")),
            ("waiting", _("Waiting for a decision")),
            ("overdue", _("Overdue")),
        ],
    )
    state = forms.ChoiceField(
        label=_("State"), required=False, choices=[("", _("All")), *OutcomeState.choices]
    )
    program = forms.ModelChoiceField(
        label=_("Program"),
        queryset=Program.objects.none(),
        required=False,
        empty_label=_("All programs"),
    )

    def __init__(self, *args, city=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["program"].queryset = Program.objects.filter(city=city)
