"""The usage summary of an outcome report: what the voucher paid for, from the ledger.

The ledger (vouchers.models.LedgerEntry) knows each charge's amount but not where it ran:
the data center and accelerator are on the usage records, which are compute's. So the
breakdown comes from a provider that compute registers (`usage_breakdown_register`, from
its `AppConfig.ready()`), the way it contributes links and work lists, and vouchers never
imports compute. Without a provider the summary has the ledger's totals alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Sum
from django.utils.translation import get_language

from vouchers.models import EntryKind, LedgerEntry, Voucher

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class UsageLine:
    """One data center × accelerator model of a voucher's accepted (not void) usage."""

    data_center_zh: str
    data_center_en: str
    accelerator: str
    domestic: bool
    quantity: Decimal  # card-hours
    amount: Decimal  # at the data center's list price
    covered: Decimal  # what the voucher paid


_providers: list[Callable[[Voucher], list[UsageLine]]] = []


def usage_breakdown_register(provider: Callable[[Voucher], list[UsageLine]]) -> None:
    """Register the function that breaks a voucher's usage down by data center and
    accelerator (compute's). Registering the same function twice keeps one."""
    if provider not in _providers:
        _providers.append(provider)


def ledger_totals(voucher: Voucher) -> dict[str, Decimal]:
    """What the voucher's ledger says: charged (charges less reversals) and what expiry,
    revocation and adjustments took. One grouped query."""
    sums = dict(
        LedgerEntry.objects.filter(voucher=voucher)
        .values_list("kind")
        .annotate(s=Sum("amount"))
        .values_list("kind", "s")
    )
    charged = -(sums.get(EntryKind.CHARGE) or ZERO) - (sums.get(EntryKind.REVERSAL) or ZERO)
    return {
        "face_value": voucher.face_value,
        "charged": charged,
        "balance": voucher.balance,
    }


def usage_summary_localised(summary: dict) -> dict:
    """The stored summary with each line's data center named in the reader's language."""
    zh = (get_language() or "zh").startswith("zh")
    lines = [
        {**line, "data_center": line.get("data_center_zh" if zh else "data_center_en") or ""}
        for line in summary.get("lines", [])
    ]
    return {**summary, "lines": lines}


def usage_summary(voucher: Voucher) -> dict:
    """The report's usage summary as stored (JSON: figures as exact strings)."""
    lines = [line for provider in _providers for line in provider(voucher)]
    lines.sort(key=lambda line: (line.data_center_en, line.accelerator))
    totals = ledger_totals(voucher)
    return {
        "lines": [
            {
                "data_center_zh": line.data_center_zh,
                "data_center_en": line.data_center_en,
                "accelerator": line.accelerator,
                "domestic": line.domestic,
                "quantity": str(line.quantity),
                "amount": str(line.amount),
                "covered": str(line.covered),
            }
            for line in lines
        ],
        "quantity": str(sum((line.quantity for line in lines), Decimal("0.000"))),
        **{name: str(value) for name, value in totals.items()},
    }
