"""The vouchers app's links on the portal's pages (portal.links), registered by
`VouchersConfig.ready()`."""

from __future__ import annotations

from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from portal.links import Link, link_group_register, link_register
from vouchers import selectors
from vouchers.models import ApplicationState


def _application_links(city, applications) -> list[Link]:
    return [
        Link(
            label=f"#{a.pk} {a.company.legal_name} · {a.program.name}",
            url=reverse("vouchers:staff_application", args=[city.slug, a.pk]),
        )
        for a in applications[:50]
    ]


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
    link_group_register(
        "portal.staff_home",
        name="vouchers.without_approver",
        title=_("Applications no approver of the city may approve (each approver reviewed it)"),
        links=lambda request: _application_links(
            request.city, selectors.application_without_approver_list(city=request.city)
        ),
    )
    link_group_register(
        "portal.staff_home",
        name="vouchers.tie_break",
        title=_("Tie-breaks: evenly split reviews waiting for a program manager"),
        links=lambda request: _application_links(
            request.city,
            selectors.application_list(city=request.city).filter(state=ApplicationState.TIE_BREAK),
        ),
    )
