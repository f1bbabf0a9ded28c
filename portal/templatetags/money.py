"""Money as people read it: `¥1,234,567.00`, exact to the fen."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django import template

register = template.Library()

FEN = Decimal("0.01")


def format_yuan(value: Decimal | int | str | None) -> str:
    if value is None or value == "":
        return ""
    try:
        amount = Decimal(str(value)).quantize(FEN, rounding=ROUND_HALF_UP)
    except InvalidOperation:
        return ""
    sign = "-" if amount < 0 else ""
    return f"{sign}¥{abs(amount):,.2f}"


@register.filter(name="yuan")
def yuan(value: Decimal | int | str | None) -> str:
    return format_yuan(value)
