from __future__ import annotations

from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from compute.models import DataCenter, RegistrationStatus
from vouchers.models import VoucherStatus


class RedemptionRequestForm(forms.Form):
    data_center = forms.ModelChoiceField(
        label=_("Data center"), queryset=DataCenter.objects.none(), empty_label=None
    )
    contract_ref = forms.CharField(
        label=_("Contract reference"),
        max_length=100,
        help_text=_("The number of your compute contract with the data center."),
    )
    amount_cap = forms.DecimalField(
        label=_("Cap (optional)"),
        required=False,
        max_digits=14,
        decimal_places=2,
        min_value=Decimal("0.01"),
        help_text=_("At most this much of the voucher may be used at this data center."),
    )

    def __init__(self, *args, data_centers=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["data_center"].queryset = data_centers or DataCenter.objects.none()


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=300, widget=forms.TextInput)


class AcceptForm(forms.Form):
    contract_ref = forms.CharField(
        label=_("Contract reference"),
        max_length=100,
        required=False,
        help_text=_("Leave empty to keep the company's reference."),
    )


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        label=_("Key name"),
        max_length=100,
        required=False,
        help_text=_("To tell keys apart, e.g. 'billing system 2026'."),
    )
    expires_on = forms.DateField(
        label=_("Valid until"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text=_(
            "Optional: the key works through this day (Asia/Shanghai) and is refused after "
            "it; your operators are reminded by e-mail before."
        ),
    )


class RegistrationForm(forms.Form):
    data_center = forms.ModelChoiceField(
        label=_("Data center"), queryset=DataCenter.objects.filter(is_active=True)
    )
    status = forms.ChoiceField(label=_("Status"), choices=RegistrationStatus.choices)


class VoucherSearchForm(forms.Form):
    q = forms.CharField(label=_("Search"), required=False, max_length=100)
    status = forms.ChoiceField(
        label=_("Status"),
        required=False,
        choices=[("", _("All")), *VoucherStatus.choices],
    )
