from __future__ import annotations

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from portal.errors import DomainError
from portal.models import Role


class SignupForm(forms.Form):
    """Extra fields on allauth's sign-up form."""

    display_name = forms.CharField(label=_("Your name"), max_length=120)
    preferred_language = forms.ChoiceField(
        label=_("Preferred language"), choices=settings.LANGUAGES, initial=settings.LANGUAGE_CODE
    )

    def signup(self, request, user) -> None:  # allauth's hook, called before the user is saved
        user.display_name = self.cleaned_data["display_name"]
        user.preferred_language = self.cleaned_data["preferred_language"]
        user.save()


class StaffGrantForm(forms.Form):
    """A program manager gives a staff role of the city to an e-mail address."""

    email = forms.EmailField(label=_("E-mail address"), max_length=254)
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices)


class FiniteDecimalField(forms.DecimalField):
    """A DecimalField that refuses NaN and infinities while parsing, not only when
    validating: a formset asks each row `has_changed()`, which compares the parsed value,
    and comparing a signalling NaN ("sNaN") raises (a 500 the form fuzzer found)."""

    def to_python(self, value):
        number = super().to_python(value)
        if number is not None and not number.is_finite():
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return number


def apply_domain_error(form: forms.BaseForm, error: DomainError) -> None:
    """Show a service's refusal on the form: per field where it names fields, else on top."""
    placed = False
    for field, messages in error.fields.items():
        if field in form.fields:
            for message in messages:
                form.add_error(field, message)
            placed = True
    if not placed:
        form.add_error(None, error.message)
