"""Reads of findings and declarations, always scoped: a city's staff see their city's
findings, a data center's operators their own; anything else is a 404."""

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from compute.integrity.models import (
    Finding,
    FindingStatus,
    IntegrityRules,
    Inventory,
    PriceBand,
    RelatedParty,
)
from compute.models import DataCenter, Registration, UsageRecord
from portal.models import City
from vouchers.models import Program


def finding_list(
    *, city: City | None = None, data_center: DataCenter | None = None, status: str = ""
) -> QuerySet[Finding]:
    assert city is not None or data_center is not None, "findings are read within a scope"
    findings = Finding.objects.select_related("data_center", "voucher", "company", "city")
    if city is not None:
        findings = findings.filter(city=city)
    if data_center is not None:
        findings = findings.filter(data_center=data_center)
    if status in FindingStatus.values:
        findings = findings.filter(status=status)
    return findings.order_by("-raised_at", "-id")


def finding_get(*, pk: int, city: City | None = None, data_center: DataCenter | None = None):
    return get_object_or_404(finding_list(city=city, data_center=data_center), pk=pk)


def finding_record_list(*, finding: Finding) -> QuerySet[UsageRecord]:
    return (
        UsageRecord.objects.filter(findings=finding)
        .select_related("voucher")
        .order_by("started_at", "id")
    )


def registration_list(*, data_center: DataCenter) -> QuerySet[Registration]:
    """The cities a data center is registered in: where it declares inventory."""
    return Registration.objects.filter(data_center=data_center).select_related("city")


def integrity_rules_get(*, program: Program) -> IntegrityRules | None:
    """The program's integrity settings, None while it has set none (the defaults)."""
    return IntegrityRules.objects.filter(program=program).first()


def price_band_list(*, program: Program) -> QuerySet[PriceBand]:
    return PriceBand.objects.filter(program=program)


def inventory_list(*, data_center: DataCenter) -> QuerySet[Inventory]:
    return Inventory.objects.filter(registration__data_center=data_center).select_related(
        "registration__city"
    )


def related_party_list(
    *, data_center: DataCenter | None = None, company_id: int | None = None
) -> QuerySet[RelatedParty]:
    if data_center is not None:
        return RelatedParty.objects.filter(data_center=data_center)
    return RelatedParty.objects.filter(company_id=company_id or 0)


def related_party_get(
    *, pk: int, data_center: DataCenter | None = None, company_id: int | None = None
) -> RelatedParty:
    """One of the owner's declared parties; another owner's is a 404."""
    return get_object_or_404(
        related_party_list(data_center=data_center, company_id=company_id), pk=pk
    )
