"""The vouchers app's links on the portal's pages (portal.links), registered by
`VouchersConfig.ready()`."""

from __future__ import annotations

from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from portal.links import link_register


def links_register() -> None:
    link_register(
        "portal.user_nav",
        name="vouchers.company_home",
        label=_("My company"),
        url=lambda request: reverse("vouchers:company_home"),
    )
    link_register(
        "portal.staff_nav",
        name="vouchers.queue",
        label=_("Applications"),
        url=lambda city: reverse("vouchers:queue", args=[city.slug]),
    )
    link_register(
        "portal.staff_nav",
        name="vouchers.staff_programs",
        label=_("Programs"),
        url=lambda city: reverse("vouchers:staff_programs", args=[city.slug]),
    )
    link_register(
        "portal.city_home",
        name="vouchers.programs",
        label=_("See the programs open for applications"),
        url=lambda city: reverse("vouchers:programs", args=[city.slug]),
    )
