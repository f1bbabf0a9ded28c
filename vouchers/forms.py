from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from portal.forms import FiniteDecimalField
from portal.models import City
from vouchers.models import (
    ApplicationState,
    EligibilityResult,
    Program,
    criterion_label,
    document_type_label,
)
from vouchers.services.programs import PROGRAM_FIELDS
from vouchers.worklists import Todo


class CompanyForm(forms.Form):
    legal_name = forms.CharField(label=_("Legal name"), max_length=200)
    credit_code = forms.CharField(
        label=_("Unified social credit code"),
        max_length=18,
        min_length=18,
        help_text=_("18 characters, as on the business licence."),
    )
    registered_city = forms.ModelChoiceField(
        label=_("Registered in"),
        queryset=City.objects.filter(is_active=True),
        required=False,
        empty_label=_("Elsewhere"),
    )
    registered_address = forms.CharField(
        label=_("Registered address"), max_length=300, required=False
    )
    founded_on = forms.DateField(
        label=_("Founding date"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    headcount = forms.IntegerField(
        label=_("Headcount"), min_value=0, max_value=10_000_000, required=False
    )
    revenue_last_year = forms.DecimalField(
        label=_("Revenue last year (yuan)"),
        min_value=0,
        max_digits=14,
        decimal_places=2,
        required=False,
    )


class CompanyProfileForm(CompanyForm):
    """The profile without the credit code, which never changes."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        del self.fields["credit_code"]


class InviteForm(forms.Form):
    email = forms.EmailField(label=_("E-mail address of the colleague"))


class ProjectForm(forms.Form):
    title = forms.CharField(label=_("Project title"), max_length=200, required=False)
    summary = forms.CharField(
        label=_("Summary"), widget=forms.Textarea(attrs={"rows": 4}), required=False
    )
    model_plans = forms.CharField(
        label=_("Model plans"), widget=forms.Textarea(attrs={"rows": 4}), required=False
    )


class PlanRowForm(forms.Form):
    accelerator = forms.CharField(label=_("Accelerator model"), max_length=64)
    domestic = forms.BooleanField(label=_("Domestic chip"), required=False)
    hours = FiniteDecimalField(
        label=_("Accelerator-hours"), min_value=1, max_digits=12, decimal_places=1
    )
    preferred_data_center = forms.CharField(
        label=_("Preferred data center"), max_length=120, required=False
    )


PlanFormSet = forms.formset_factory(PlanRowForm, extra=2, max_num=20, validate_max=True)


class AmountForm(forms.Form):
    requested_amount = forms.DecimalField(
        label=_("Requested amount (yuan)"),
        min_value=0,
        max_digits=14,
        decimal_places=2,
        required=False,
    )
    declares_no_related_party = forms.BooleanField(
        label=_("The compute provider is not a related party of our company."), required=False
    )
    declares_no_other_subsidy = forms.BooleanField(
        label=_("We receive no other subsidy for the same compute contract."), required=False
    )
    declares_true_information = forms.BooleanField(
        label=_("The information in this application is true and complete."), required=False
    )


class DocumentForm(forms.Form):
    doc_type = forms.ChoiceField(label=_("Document type"))
    file = forms.FileField(label=_("File (PDF, PNG or JPEG, at most 20 MB)"))

    def __init__(self, *args, types: list[str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [(t, document_type_label(t)) for t in types or [] if t != "other"]
        choices.append(("other", document_type_label("other")))
        self.fields["doc_type"].choices = choices  # type: ignore[attr-defined]


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"), widget=forms.Textarea(attrs={"rows": 3}), max_length=2000
    )


class QuestionForm(forms.Form):
    question = forms.CharField(
        label=_("What do you need to know?"),
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=2000,
    )


class AnswerForm(forms.Form):
    answer = forms.CharField(
        label=_("Your answer"), widget=forms.Textarea(attrs={"rows": 4}), max_length=5000
    )


class ApproveForm(forms.Form):
    amount = forms.DecimalField(
        label=_("Amount to award (yuan)"), min_value=0, max_digits=14, decimal_places=2
    )
    reason = forms.CharField(
        label=_("Reason for the award"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Required when the award is less than the amount requested."),
    )


class LetterTemplateForm(forms.Form):
    """A program's wording of one kind of decision letter, in both languages."""

    title_zh = forms.CharField(label=_("Title (Chinese)"), max_length=200)
    body_zh = forms.CharField(label=_("Body (Chinese)"), widget=forms.Textarea(attrs={"rows": 8}))
    title_en = forms.CharField(label=_("Title (English)"), max_length=200)
    body_en = forms.CharField(label=_("Body (English)"), widget=forms.Textarea(attrs={"rows": 8}))


class ConflictForm(forms.Form):
    conflict = forms.TypedChoiceField(
        label=_("Do you have a conflict of interest with this applicant?"),
        choices=[("no", _("No conflict")), ("yes", _("Yes, I have a conflict"))],
        coerce=lambda v: v == "yes",
        widget=forms.RadioSelect,
    )
    note = forms.CharField(label=_("Note"), max_length=300, required=False)


class ScoreForm(forms.Form):
    comment = forms.CharField(
        label=_("Comment"), widget=forms.Textarea(attrs={"rows": 3}), required=False
    )
    recommend = forms.TypedChoiceField(
        label=_("Recommendation"),
        choices=[("yes", _("Recommend")), ("no", _("Do not recommend"))],
        coerce=lambda v: v == "yes",
        widget=forms.RadioSelect,
    )

    def __init__(self, *args, rubric: list[dict] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.rubric = rubric or []
        for i, criterion in enumerate(self.rubric):
            self.fields[f"score_{i}"] = forms.IntegerField(
                label=(
                    f"{criterion_label(criterion)} (0–{criterion['max']}, ×{criterion['weight']})"
                ),
                min_value=0,
                max_value=criterion["max"],
            )

    def scores(self) -> dict[str, int]:
        return {c["name"]: self.cleaned_data[f"score_{i}"] for i, c in enumerate(self.rubric)}


class TieBreakForm(forms.Form):
    recommend = forms.TypedChoiceField(
        label=_("Recommendation"),
        choices=[("yes", _("Recommend")), ("no", _("Do not recommend"))],
        coerce=lambda v: v == "yes",
        widget=forms.RadioSelect,
    )
    reason = forms.CharField(
        label=_("Reason"), widget=forms.Textarea(attrs={"rows": 3}), max_length=2000
    )


class AssignForm(forms.Form):
    reviewer = forms.ModelChoiceField(label=_("Reviewer"), queryset=None)  # type: ignore[var-annotated]

    def __init__(self, *args, reviewers=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reviewer"].queryset = reviewers


class ObjectionForm(forms.Form):
    text = forms.CharField(
        label=_("Your objection"), widget=forms.Textarea(attrs={"rows": 4}), max_length=5000
    )


class ResolveForm(forms.Form):
    resolution = forms.CharField(
        label=_("How was it resolved?"), widget=forms.Textarea(attrs={"rows": 3}), max_length=5000
    )


class QueueForm(forms.Form):
    q = forms.CharField(
        label=_("Search"),
        help_text=_("Company name, credit code or project title"),
        required=False,
        max_length=100,
    )
    program = forms.ModelChoiceField(
        label=_("Program"),
        queryset=Program.objects.none(),
        required=False,
        empty_label=_("All programs"),
    )
    state = forms.ChoiceField(label=_("State"), required=False)
    assignee = forms.ModelChoiceField(  # type: ignore[var-annotated]
        label=_("Reviewer"), queryset=None, required=False, empty_label=_("All reviewers")
    )
    eligibility = forms.ChoiceField(
        label=_("Eligibility"),
        required=False,
        choices=[("", _("All")), *EligibilityResult.choices],
    )
    # The staff home's work lists open the queue filtered by these (vouchers.worklists).
    todo = forms.ChoiceField(
        label=_("Waiting for"), required=False, choices=[("", _("All")), *Todo.choices]
    )
    assigned = forms.ChoiceField(
        label=_("My reviews to do"),
        required=False,
        choices=[("", _("All")), ("me", _("Assigned to me, not yet submitted"))],
    )
    sort = forms.ChoiceField(
        label=_("Sort"),
        required=False,
        choices=[
            ("-submitted_at", _("Newest first")),
            ("submitted_at", _("Oldest first")),
            ("-requested_amount", _("Largest request")),
            ("company__legal_name", _("Company name")),
            ("-average", _("Highest average score")),
        ],
    )

    def __init__(self, *args, city=None, reviewers=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["program"].queryset = Program.objects.filter(city=city)
        # Drafts are the company's own until submitted; staff never see them.
        states = [c for c in ApplicationState.choices if c[0] != ApplicationState.DRAFT]
        self.fields["state"].choices = [("", _("All")), *states]
        self.fields["assignee"].queryset = reviewers


class ProgramForm(forms.ModelForm):
    class Meta:
        model = Program
        # The rubric, documents and rules are edited as rows (vouchers.program_forms).
        fields = [
            f
            for f in PROGRAM_FIELDS
            if f not in ("rubric", "required_documents", "eligibility_rules")
        ]
        widgets = {
            "opens_at": forms.DateTimeInput(attrs={"type": "datetime-local"}),
            "closes_at": forms.DateTimeInput(attrs={"type": "datetime-local"}),
            "description_zh": forms.Textarea(attrs={"rows": 3}),
            "description_en": forms.Textarea(attrs={"rows": 3}),
        }
        # changed_data (which money fields a post changes, for re-authentication) compares
        # parsed values: a posted "sNaN" must fail parsing, not the comparison.
        field_classes = {
            name: FiniteDecimalField
            for name in (
                "budget",
                "award_min",
                "award_max",
                "rate_domestic",
                "rate_other",
                "company_yearly_cap",
            )
        }

    def _post_clean(self):
        # The model's CheckConstraints are checked by the service with clearer messages.
        pass
