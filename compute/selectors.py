"""Reads of the compute app, scoped so that another data center's or another city's
objects are simply not there (a 404, never a 403)."""

from __future__ import annotations

from django.db.models import QuerySet

from compute.models import (
    DataCenter,
    Redemption,
    RegistrationStatus,
    UsageBatch,
    UsageRecord,
)
from portal.models import City, User
from vouchers.models import Voucher


def vouchers_visible_to(*, data_center: DataCenter) -> QuerySet[Voucher]:
    """Vouchers of the cities the data center is actively registered for."""
    return Voucher.objects.filter(
        city__registrations__data_center=data_center,
        city__registrations__status=RegistrationStatus.ACTIVE,
    ).select_related("city", "program", "company")


def redemption_list(*, data_center: DataCenter) -> QuerySet[Redemption]:
    return Redemption.objects.filter(data_center=data_center).select_related(
        "voucher__company", "voucher__city"
    )


def batch_list(*, data_center: DataCenter) -> QuerySet[UsageBatch]:
    return UsageBatch.objects.filter(data_center=data_center)


def usage_record_list(*, data_center: DataCenter) -> QuerySet[UsageRecord]:
    return UsageRecord.objects.filter(data_center=data_center).select_related("voucher")


def data_centers_operated_by(*, user: User) -> QuerySet[DataCenter]:
    if not user.is_authenticated:
        return DataCenter.objects.none()
    if user.is_superuser:
        return DataCenter.objects.all()
    return DataCenter.objects.filter(operators=user)


def data_centers_for_voucher(*, voucher: Voucher) -> QuerySet[DataCenter]:
    """Where a voucher may be redeemed: registered for its city, allowed by its program."""
    return DataCenter.objects.filter(
        is_active=True,
        registrations__city_id=voucher.city_id,
        registrations__status=RegistrationStatus.ACTIVE,
        programs=voucher.program_id,
    ).distinct()


def city_vouchers(*, city: City) -> QuerySet[Voucher]:
    return Voucher.objects.filter(city=city).select_related("program", "company")


def vouchers_of_user(*, user: User) -> QuerySet[Voucher]:
    """Vouchers of the companies the user is a member of."""
    if not user.is_authenticated:
        return Voucher.objects.none()
    return Voucher.objects.filter(company__members=user).select_related(
        "city", "program", "company"
    )


def usage_by_data_center(*, voucher: Voucher) -> list[dict]:
    """Accepted usage of a voucher summed per data center, in one query."""
    from django.db.models import Count, Sum

    return list(
        UsageRecord.objects.filter(voucher=voucher, status="accepted")
        .values("data_center__slug", "data_center__name_zh", "data_center__name_en")
        .annotate(records=Count("id"), amount=Sum("amount"), covered=Sum("covered_amount"))
        .order_by("data_center__slug")
    )


def voucher_search(*, vouchers: QuerySet[Voucher], query: str, status: str) -> QuerySet[Voucher]:
    from django.db.models import Q

    if query:
        vouchers = vouchers.filter(
            Q(code__icontains=query)
            | Q(company__legal_name__icontains=query)
            | Q(company__credit_code__iexact=query)
        )
    if status:
        vouchers = vouchers.filter(status=status)
    return vouchers


def settlement_list(*, data_center: DataCenter):
    from compute.models import Settlement

    return Settlement.objects.filter(data_center=data_center).select_related("city")


def city_settlements(*, city: City):
    from compute.models import Settlement

    return Settlement.objects.filter(city=city).select_related("data_center")
