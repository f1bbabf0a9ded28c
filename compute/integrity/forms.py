"""Forms of the integrity screens: a data center's inventory and related parties."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from compute.integrity.models import IntegrityRules, PriceBand
from compute.integrity.parties import party_code_normalise, party_code_valid
from compute.models import Registration


class InventoryForm(forms.Form):
    registration = forms.ModelChoiceField(
        label=_("City registration"), queryset=Registration.objects.none(), empty_label=None
    )
    accelerator = forms.CharField(
        label=_("Accelerator model"),
        max_length=64,
        help_text=_("As your usage records name it, e.g. Ascend 910B."),
    )
    cards = forms.IntegerField(label=_("Cards"), min_value=0, max_value=10_000_000)
    valid_from = forms.DateField(label=_("From"), widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, registrations=None, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["registration"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = registrations if registrations is not None else Registration.objects.none()
        field.label_from_instance = lambda r: r.city.name

    def clean_accelerator(self) -> str:
        return self.cleaned_data["accelerator"].strip()


class RelatedPartyForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=120)
    code = forms.CharField(
        label=_("ID number or registration code"),
        max_length=40,
        help_text=_(
            "A shareholder's or manager's resident ID number, or a shareholding company's "
            "unified social credit code (18 characters; spaces and dashes are ignored)."
        ),
    )

    def clean_name(self) -> str:
        name = " ".join(self.cleaned_data["name"].split())
        if not name:
            raise forms.ValidationError(_("Give the shareholder's or manager's name."))
        return name

    def clean_code(self) -> str:
        code = party_code_normalise(self.cleaned_data["code"])
        if not code:
            raise forms.ValidationError(_("Give an ID number or registration code."))
        if not party_code_valid(code):
            raise forms.ValidationError(
                _(
                    "This is not an ID number (18 characters, the last a digit or X) nor a "
                    "unified social credit code (18 digits and capital letters)."
                )
            )
        return code


class IntegrityRulesForm(forms.ModelForm):
    class Meta:
        model = IntegrityRules
        fields = ["check_plan", "plan_margin_percent", "hold_charges", "drain_factor"]


class PriceBandForm(forms.ModelForm):
    class Meta:
        model = PriceBand
        fields = ["accelerator", "reference_price", "tolerance_percent"]

    def validate_unique(self) -> None:
        """Setting a model's band again changes it (the service updates it)."""
