"""The compute app's links on the pages of the portal and the vouchers app
(portal.links), registered by `ComputeConfig.ready()`: neither of them may name a compute
URL itself."""

from __future__ import annotations

from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from compute.selectors import data_center_list
from compute.worklists import work_lists_register
from portal.links import link_register
from vouchers.selectors import voucher_list


def _my_vouchers(request) -> str | None:
    return reverse("compute:my_vouchers") if voucher_list(user=request.user).exists() else None


def _console(request) -> str | None:
    user = request.user
    operates = user.is_superuser or data_center_list(operator=user).exists()
    return reverse("compute:console_list") if operates else None


def links_register() -> None:
    link_register(
        "portal.user_nav", name="compute.my_vouchers", label=_("My vouchers"), url=_my_vouchers
    )
    link_register(
        "portal.user_nav",
        name="compute.console",
        label=_("Data-center console"),
        url=_console,
    )
    for name, label in (
        ("staff_vouchers", _("Vouchers")),
        ("staff_data_centers", _("Data centers")),
        ("staff_settlements", _("Settlements")),
        ("staff_sync", _("Sync and reconciliation")),
        ("staff_findings", _("Integrity findings")),
    ):
        link_register(
            "portal.staff_nav",
            name=f"compute.{name}",
            label=label,
            url=lambda city, name=name: reverse(f"compute:{name}", args=[city.slug]),  # type: ignore[misc]
        )
    # The company's pages link a voucher's code to its page here: balance, ledger,
    # redemptions and usage.
    link_register(
        "vouchers.voucher",
        name="compute.my_voucher",
        label=_("Voucher"),
        url=lambda voucher: reverse("compute:my_voucher", args=[voucher.code]),
    )
    # The company's page (and its line on /company/) link to its shareholders and
    # managers, declared here for the related-party check.
    link_register(
        "vouchers.company",
        name="compute.company_parties",
        label=_("Shareholders and managers"),
        url=lambda company: reverse("compute:company_parties", args=[company.pk]),
    )
    work_lists_register()
