"""What waits for whom in compute: the city staff's work lists on their home (registered
into `portal.staff_home`), the company's on /company/ (`vouchers.company_home`), and the
operator console's. Each list is a count and its first few rows (a query whatever the
data's size, and the count: on the homes a `Tally`, taken with the other lists' in one
statement) and links to the page filtered the same way, so the count is the
length of the list the link opens.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from compute import selectors
from compute.batches import failed_batches
from compute.models import DataCenter, Redemption, RedemptionStatus, SettlementStatus
from portal.links import Link, LinkGroup, Tally, WorkList, work_list_register
from portal.models import Role
from portal.tenancy import roles_in_city
from vouchers.links import FIRST, waiting_days
from vouchers.models import Voucher, VoucherStatus
from vouchers.selectors import voucher_list

# The city staff roles each list is for: oversight (program managers and auditors) for
# what the city watches, program managers alone for the statements they issue and pay.
WATCHERS = frozenset({Role.PROGRAM_MANAGER, Role.AUDITOR})
PAYERS = frozenset({Role.PROGRAM_MANAGER})


def _for(request, roles: frozenset[str]) -> bool:
    return bool(roles_in_city(request.user, request.city) & roles)


def _staff_redemptions(request) -> WorkList | None:
    if not _for(request, WATCHERS):
        return None
    city = request.city
    pending = selectors.redemption_list(city=city, status=RedemptionStatus.REQUESTED)
    first = pending.order_by("created_at", "id")[:FIRST]
    return WorkList(
        count=Tally(pending),
        links=lambda: [
            Link(
                label=f"{r.voucher.code} {r.voucher.company.legal_name} → {r.data_center.name}",
                url=reverse("compute:staff_voucher", args=[city.slug, r.voucher.code]),
                detail=waiting_days(r.created_at),
            )
            for r in first
        ],
        all_url=reverse("compute:staff_redemptions", args=[city.slug])
        + f"?status={RedemptionStatus.REQUESTED}",
    )


def _staff_discrepancies(request) -> WorkList | None:
    if not _for(request, WATCHERS):
        return None
    city = request.city
    found = selectors.discrepancy_list(city=city, open_only=True)
    url = reverse("compute:staff_sync", args=[city.slug])
    return WorkList(
        count=Tally(found),
        links=lambda: [
            Link(label=f"{d.kind}: {d.detail[:60]}", url=f"{url}?open=1#discrepancies")
            for d in found[:FIRST]
        ],
        all_url=f"{url}?open=1#discrepancies",
    )


def _staff_feeds(request) -> WorkList | None:
    if not _for(request, WATCHERS):
        return None
    city = request.city
    feeds = selectors.unhealthy_feed_list(city=city)
    url = reverse("compute:staff_sync", args=[city.slug]) + "?feed=unhealthy"
    return WorkList(
        count=Tally(feeds),
        links=lambda: [
            Link(label=dc.name, url=url, detail=dc.feed_error[:80]) for dc in feeds[:FIRST]
        ],
        all_url=url,
    )


def _staff_statements(request, status: str) -> WorkList | None:
    if not _for(request, PAYERS):
        return None
    city = request.city
    statements = selectors.settlement_list(city=city, status=status)
    first = statements.order_by("period", "id")[:FIRST]
    return WorkList(
        count=Tally(statements),
        links=lambda: [
            Link(
                label=f"{s.period:%Y-%m} · {s.data_center.name}",
                url=reverse("compute:staff_settlement", args=[city.slug, s.pk]),
            )
            for s in first
        ],
        all_url=reverse("compute:staff_settlements", args=[city.slug]) + f"?status={status}",
    )


# --- the company -------------------------------------------------------------------------


def unbound_filter() -> Q:
    """Active vouchers without a live redemption: the company has yet to bind them to a
    data center before any usage can be charged."""
    live = Redemption.objects.filter(
        voucher=OuterRef("pk"),
        status__in=[RedemptionStatus.REQUESTED, RedemptionStatus.ACTIVE],
    )
    return Q(status=VoucherStatus.ACTIVE) & ~Q(Exists(live))


def company_voucher_list(*, vouchers: QuerySet[Voucher], waiting: str) -> QuerySet[Voucher]:
    """The company's vouchers a work list names (`?waiting=unbound|redemption`)."""
    if waiting == "unbound":
        return vouchers.filter(unbound_filter())
    if waiting == "redemption":
        return vouchers.filter(
            Exists(
                Redemption.objects.filter(voucher=OuterRef("pk"), status=RedemptionStatus.REQUESTED)
            )
        )
    return vouchers


def _company_vouchers(request, waiting: str) -> WorkList | None:
    if not request.user.is_authenticated:
        return None
    vouchers = company_voucher_list(vouchers=voucher_list(user=request.user), waiting=waiting)
    return WorkList(
        count=Tally(vouchers),
        links=lambda: [
            Link(
                label=f"{v.code} {v.company.legal_name}",
                url=reverse("compute:my_voucher", args=[v.code]),
            )
            for v in vouchers.order_by("issued_at", "id")[:FIRST]
        ],
        all_url=reverse("compute:my_vouchers") + f"?waiting={waiting}",
    )


# --- the operator console ------------------------------------------------------------------


@dataclass(frozen=True)
class _ConsoleList:
    """One of the console's lists: counted and listed at once (one data center's)."""

    count: int
    links: list[Link]
    all_url: str


def console_work(dc: DataCenter) -> list[LinkGroup]:
    """What waits for the data center's operators, as work-list groups."""
    requested = selectors.redemption_list(data_center=dc, status=RedemptionStatus.REQUESTED)
    failed = failed_batches(data_center=dc)
    to_confirm = selectors.settlement_list(data_center=dc, status=SettlementStatus.ISSUED)
    redemptions = reverse("compute:console_redemptions", args=[dc.slug])
    work = [
        (
            "console.redemptions",
            _("Redemptions to accept"),
            _ConsoleList(
                count=requested.count(),
                links=[
                    Link(
                        label=f"{r.voucher.code} {r.voucher.company.legal_name}",
                        url=reverse("compute:console_accept", args=[dc.slug, r.pk]),
                        detail=waiting_days(r.created_at),
                    )
                    for r in requested.order_by("created_at", "id")[:FIRST]
                ],
                all_url=f"{redemptions}?status={RedemptionStatus.REQUESTED}",
            ),
        ),
        (
            "console.failed_batches",
            _("Failed usage batches"),
            _ConsoleList(
                count=failed.count(),
                links=[
                    Link(
                        label=f"#{b.pk} {b.created_at:%Y-%m-%d %H:%M}",
                        url=reverse("compute:console_batch", args=[dc.slug, b.pk]),
                        detail=b.failure_reason[:80],
                    )
                    for b in failed[:FIRST]
                ],
                all_url=reverse("compute:console_batches", args=[dc.slug]) + "?failed=1",
            ),
        ),
        (
            "console.statements",
            _("Statements to confirm"),
            _ConsoleList(
                count=to_confirm.count(),
                links=[
                    Link(
                        label=f"{s.period:%Y-%m} · {s.city.name}",
                        url=reverse("compute:console_settlement", args=[dc.slug, s.pk]),
                    )
                    for s in to_confirm.order_by("period", "id")[:FIRST]
                ],
                all_url=reverse("compute:console_settlements", args=[dc.slug])
                + f"?status={SettlementStatus.ISSUED}",
            ),
        ),
    ]
    if dc.feed_url:
        sync = reverse("compute:console_sync", args=[dc.slug])
        unhealthy = not dc.feed_healthy
        work.append(
            (
                "console.feed",
                _("Unhealthy usage feed"),
                _ConsoleList(
                    count=int(unhealthy),
                    links=[Link(label=dc.feed_error[:120] or dc.name, url=sync)]
                    if unhealthy
                    else [],
                    all_url=sync,
                ),
            )
        )
    return [
        LinkGroup(title=str(title), links=w.links, count=w.count, all_url=w.all_url, name=name)
        for name, title, w in work
    ]


def work_lists_register() -> None:
    staff = [
        ("compute.redemptions", _("Redemptions waiting for a data center"), _staff_redemptions),
        ("compute.discrepancies", _("Open discrepancies"), _staff_discrepancies),
        ("compute.feeds", _("Unhealthy data-center feeds"), _staff_feeds),
        (
            "compute.statements_issue",
            _("Statements to issue"),
            lambda request: _staff_statements(request, SettlementStatus.DRAFT),
        ),
        (
            "compute.statements_pay",
            _("Statements to mark paid"),
            lambda request: _staff_statements(request, SettlementStatus.CONFIRMED),
        ),
    ]
    for name, title, work in staff:
        work_list_register("portal.staff_home", name=name, title=title, work=work)
    work_list_register(
        "vouchers.company_home",
        name="compute.unbound",
        title=_("Vouchers to bind to a data center"),
        work=lambda request: _company_vouchers(request, "unbound"),
    )
    work_list_register(
        "vouchers.company_home",
        name="compute.redemptions",
        title=_("Redemptions waiting for the data center"),
        work=lambda request: _company_vouchers(request, "redemption"),
    )
