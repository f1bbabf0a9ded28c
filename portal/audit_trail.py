"""The audit trail page's filters (/<city>/staff/audit/): dates in the city's time zone,
actor, action (by its label), object and free text. The export of the trail takes the
same filters (`audit_filters`), so it holds the rows the page shows."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from django import forms
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from portal.audit_labels import audit_action_choices, audit_target_choices
from portal.citytime import city_zone
from portal.models import City


class AuditFilterForm(forms.Form):
    q = forms.CharField(label=_("Search"), required=False, max_length=100)
    date_from = forms.DateField(
        label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    actor = forms.CharField(label=_("Actor"), required=False, max_length=100)
    action = forms.ChoiceField(label=_("Action"), required=False)
    target_type = forms.ChoiceField(label=_("Object type"), required=False)
    target_id = forms.CharField(label=_("Object id"), required=False, max_length=80)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        action, target_type = self.fields["action"], self.fields["target_type"]
        assert isinstance(action, forms.ChoiceField)
        assert isinstance(target_type, forms.ChoiceField)
        action.choices = [("", _("All actions")), *audit_action_choices()]
        target_type.choices = [("", _("All objects")), *audit_target_choices()]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            raise forms.ValidationError(_("The start date is after the end date."))
        return data


def audit_filters(request: HttpRequest, city: City) -> tuple[AuditFilterForm, dict]:
    """The form bound to the query string and the `audit_event_list` keywords it gives:
    a date range is the city's calendar days, from the first day's midnight to the
    midnight after the last, in the city's zone."""
    form = AuditFilterForm(request.GET or None)
    if not form.is_valid():
        return form, {}
    data, zone = form.cleaned_data, city_zone(city)
    filters: dict = {
        "query": data["q"].strip(),
        "actor": data["actor"].strip(),
        "action": data["action"],
        "target_type": data["target_type"],
        "target_id": data["target_id"].strip(),
    }
    if data["date_from"]:
        filters["since"] = datetime.combine(data["date_from"], time(), tzinfo=zone)
    if data["date_to"]:
        filters["until"] = datetime.combine(
            data["date_to"] + timedelta(days=1), time(), tzinfo=zone
        )
    return form, filters
