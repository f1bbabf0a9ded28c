"""Links to the dashboards (compute/views/dashboards.py) on other apps' pages, through
portal.links: the programs' dashboards in the city staff's navigation (shown on the
vouchers app's program pages too, which may not name a compute URL), the platform
overview in a superuser's navigation. None costs a query."""

from __future__ import annotations

from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from portal.links import link_register


def _platform_overview(request) -> str | None:
    return reverse("compute:platform_overview") if request.user.is_superuser else None


def dashboard_links_register() -> None:
    link_register(
        "portal.staff_nav",
        name="compute.program_dashboards",
        label=_("Program dashboards"),
        url=lambda city: reverse("compute:program_dashboards", args=[city.slug]),
    )
    link_register(
        "portal.user_nav",
        name="compute.platform_overview",
        label=_("Platform overview"),
        url=_platform_overview,
    )
