"""Reads of the compute app, scoped so that another data center's or another city's
objects are simply not there (a 404, never a 403). Names and scopes as in
`portal.selectors`: `<noun>_list` returns a queryset, `<noun>_get` one object or
`Http404`. The vouchers themselves are read through `vouchers.selectors`."""

from __future__ import annotations

from datetime import date

from django.db.models import Count, Q, QuerySet, Sum
from django.shortcuts import get_object_or_404

from compute.models import (
    ApiKey,
    BatchStatus,
    DataCenter,
    Discrepancy,
    RecordStatus,
    Redemption,
    RedemptionStatus,
    Registration,
    RegistrationStatus,
    Settlement,
    SettlementLine,
    SettlementStatus,
    SyncRun,
    UsageBatch,
    UsageRecord,
)
from portal.models import City, User
from portal.selectors import one_scope
from vouchers.models import Voucher

# --- data centers and their registrations ----------------------------------------------------


def data_center_list(
    *, operator: User | None = None, voucher: Voucher | None = None
) -> QuerySet[DataCenter]:
    """The data centers the user operates (all of them for a superuser), or where a
    voucher may be redeemed: registered for its city and allowed by its program."""
    if one_scope(operator=operator, voucher=voucher) == "operator":
        if operator is None or not operator.is_authenticated:
            return DataCenter.objects.none()
        if operator.is_superuser:
            return DataCenter.objects.all()
        return DataCenter.objects.filter(operators=operator)
    assert voucher is not None  # one_scope: exactly one of them is given
    return DataCenter.objects.filter(
        is_active=True,
        registrations__city_id=voucher.city_id,
        registrations__status=RegistrationStatus.ACTIVE,
        programs=voucher.program_id,
    ).distinct()


def data_center_get(*, operator: User, slug: str) -> DataCenter:
    return get_object_or_404(data_center_list(operator=operator), slug=slug)


def registration_list(
    *, city: City | None = None, data_center: DataCenter | None = None, count_live: bool = False
) -> QuerySet[Registration]:
    """The city's registrations by data center (with `count_live`: each one's active
    redemptions of the city's vouchers, as `live`), or the data center's."""
    if one_scope(city=city, data_center=data_center) == "data_center":
        return Registration.objects.filter(data_center=data_center).select_related("city")
    registrations = Registration.objects.filter(city=city).select_related("data_center")
    if count_live:
        registrations = registrations.annotate(
            live=Count(
                "data_center__redemptions",
                filter=Q(
                    data_center__redemptions__voucher__city=city,
                    data_center__redemptions__status=RedemptionStatus.ACTIVE,
                ),
            )
        )
    return registrations.order_by("data_center__slug")


def api_key_list(*, data_center: DataCenter, live_only: bool = False) -> QuerySet[ApiKey]:
    keys = ApiKey.objects.filter(data_center=data_center).select_related("created_by")
    return keys.filter(revoked_at__isnull=True) if live_only else keys


def api_key_get(*, data_center: DataCenter, pk: int) -> ApiKey:
    return get_object_or_404(ApiKey.objects.filter(data_center=data_center), pk=pk)


# --- vouchers as data centers see them -----------------------------------------------------


def vouchers_visible_to(*, data_center: DataCenter) -> QuerySet[Voucher]:
    """Vouchers of the cities the data center is actively registered for. (The API's
    name; `voucher_list` would say the same.)"""
    return Voucher.objects.filter(
        city__registrations__data_center=data_center,
        city__registrations__status=RegistrationStatus.ACTIVE,
    ).select_related("city", "program", "company")


# --- redemptions -------------------------------------------------------------------------------


def redemption_list(
    *,
    data_center: DataCenter | None = None,
    user: User | None = None,
    voucher: Voucher | None = None,
    city: City | None = None,
    status: str = "",
    oldest_first: bool = False,
) -> QuerySet[Redemption]:
    """The data center's redemptions, those of the user's companies' vouchers, one
    voucher's (the caller has scoped the voucher) or those of the city's vouchers;
    optionally of one status."""
    scope = one_scope(data_center=data_center, user=user, voucher=voucher, city=city)
    if scope == "city":
        redemptions = Redemption.objects.filter(voucher__city=city).select_related(
            "voucher__company", "data_center"
        )
    elif scope == "data_center":
        redemptions = Redemption.objects.filter(data_center=data_center).select_related(
            "voucher__company", "voucher__city"
        )
    elif scope == "user":
        if user is None or not user.is_authenticated:
            return Redemption.objects.none()
        redemptions = Redemption.objects.filter(voucher__company__members=user).select_related(
            "voucher", "data_center"
        )
    else:
        redemptions = Redemption.objects.filter(voucher=voucher).select_related("data_center")
    if status:
        redemptions = redemptions.filter(status=status)
    return redemptions.order_by("created_at", "id") if oldest_first else redemptions


def redemption_get(*, pk: int, data_center: DataCenter | None = None, user: User | None = None):
    return get_object_or_404(redemption_list(data_center=data_center, user=user), pk=pk)


# --- usage -------------------------------------------------------------------------------------


def batch_list(
    *,
    data_center: DataCenter,
    only_rejected: bool = False,
    only_failed: bool = False,
    without_bodies: bool = False,
) -> QuerySet[UsageBatch]:
    """The data center's batches; `without_bodies` leaves the (large) body and results
    unread, for lists."""
    batches = UsageBatch.objects.filter(data_center=data_center)
    if without_bodies:
        batches = batches.defer("body", "results_json")
    if only_rejected:
        batches = batches.filter(rejected__gt=0)
    if only_failed:
        batches = batches.filter(status=BatchStatus.FAILED)
    return batches


def batch_get(*, data_center: DataCenter, pk: int) -> UsageBatch:
    """One of the data center's batches with its results, without the body as sent."""
    return get_object_or_404(batch_list(data_center=data_center).defer("body"), pk=pk)


def usage_record_list(*, data_center: DataCenter) -> QuerySet[UsageRecord]:
    return UsageRecord.objects.filter(data_center=data_center).select_related("voucher")


def usage_total_list(*, voucher: Voucher) -> list[dict]:
    """Accepted usage of a voucher summed per data center, in one query."""
    return list(
        UsageRecord.objects.filter(voucher=voucher, status=RecordStatus.ACCEPTED)  # type: ignore[arg-type]
        .values("data_center__slug", "data_center__name_zh", "data_center__name_en")
        .annotate(records=Count("id"), amount=Sum("amount"), covered=Sum("covered_amount"))
        .order_by("data_center__slug")
    )


# --- feed sync and reconciliation --------------------------------------------------------------


def sync_run_list(*, data_center: DataCenter) -> QuerySet[SyncRun]:
    return SyncRun.objects.filter(data_center=data_center)


def feed_health_list(
    *, city: City, unhealthy_only: bool = False
) -> list[tuple[Registration, SyncRun | None]]:
    """The city's registrations by data center, each with its data center's latest sync
    run (or None), in two queries; `unhealthy_only`: those whose feed failed."""
    chosen = registration_list(city=city)
    if unhealthy_only:
        chosen = chosen.filter(data_center__feed_healthy=False, data_center__is_active=True)
    registrations = list(chosen)
    latest = {
        run.data_center_id: run
        for run in SyncRun.objects.filter(
            pk__in=SyncRun.objects.filter(
                data_center_id__in=[r.data_center_id for r in registrations]
            )
            .order_by("data_center_id", "-started_at")
            .distinct("data_center_id")
            .values("pk")
        )
    }
    return [(r, latest.get(r.data_center_id)) for r in registrations]


def discrepancy_list(*, city: City, open_only: bool = False) -> QuerySet[Discrepancy]:
    """What reconciliation found for the city: open ones first, newest first."""
    discrepancies = Discrepancy.objects.filter(city=city)
    if open_only:
        discrepancies = discrepancies.filter(resolved_at__isnull=True)
    return discrepancies.select_related("data_center", "voucher").order_by(
        "resolved_at", "-found_at"
    )


def unhealthy_feed_list(*, city: City) -> QuerySet[DataCenter]:
    """The data centers registered for the city whose feed failed at its last pull."""
    return DataCenter.objects.filter(
        registrations__city=city, feed_healthy=False, is_active=True
    ).order_by("slug")


# --- settlements -------------------------------------------------------------------------------


def settlement_list(
    *,
    data_center: DataCenter | None = None,
    city: City | None = None,
    issued_only: bool = False,
    period: date | None = None,
    status: str = "",
    data_center_slug: str = "",
    newest_first: bool = False,
) -> QuerySet[Settlement]:
    """The data center's statements (`issued_only`: drafts are the city's working
    copies) or the city's, optionally of one period, status or data center."""
    if one_scope(data_center=data_center, city=city) == "data_center":
        settlements = Settlement.objects.filter(data_center=data_center).select_related("city")
    else:
        settlements = Settlement.objects.filter(city=city).select_related("data_center")
    if issued_only:
        settlements = settlements.exclude(status=SettlementStatus.DRAFT)
    if period is not None:
        settlements = settlements.filter(period=period)
    if status:
        settlements = settlements.filter(status=status)
    if data_center_slug:
        settlements = settlements.filter(data_center__slug=data_center_slug)
    return settlements.order_by("-period", "id") if newest_first else settlements


def settlement_get(
    *, pk: int, data_center: DataCenter | None = None, city: City | None = None
) -> Settlement:
    """One statement of the city, or one the data center has been issued."""
    return get_object_or_404(
        settlement_list(data_center=data_center, city=city, issued_only=data_center is not None),
        pk=pk,
    )


def settlement_line_list(*, settlement: Settlement) -> QuerySet[SettlementLine]:
    return settlement.lines.order_by("id")
