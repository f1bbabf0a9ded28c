"""Compute's part of an outcome report's usage summary (vouchers.outcome_usage): a
voucher's accepted usage by data center and accelerator model, registered by
`ComputeConfig.ready()` so that vouchers never imports compute. One grouped query over
the voucher's records (index `usage_voucher_dc`) and one for the data centers' names."""

from __future__ import annotations

from django.db.models import Sum

from compute.models import DataCenter, RecordStatus, UsageRecord
from vouchers.models import Voucher
from vouchers.outcome_usage import UsageLine, usage_breakdown_register


def voucher_usage_breakdown(voucher: Voucher) -> list[UsageLine]:
    rows = list(
        UsageRecord.objects.filter(voucher=voucher, status=RecordStatus.ACCEPTED)
        .values("data_center_id", "resource", "domestic")
        .annotate(q=Sum("quantity"), a=Sum("amount"), c=Sum("covered_amount"))
        .order_by()
    )
    names = {
        dc.pk: dc
        for dc in DataCenter.objects.filter(pk__in={r["data_center_id"] for r in rows}).only(
            "name_zh", "name_en"
        )
    }
    lines = []
    for row in rows:
        center = names.get(row["data_center_id"])
        lines.append(
            UsageLine(
                data_center_zh=center.name_zh if center else str(row["data_center_id"]),
                data_center_en=center.name_en if center else str(row["data_center_id"]),
                accelerator=row["resource"],
                domestic=row["domestic"],
                quantity=row["q"],
                amount=row["a"],
                covered=row["c"],
            )
        )
    return lines


def outcome_usage_register() -> None:
    usage_breakdown_register(voucher_usage_breakdown)
