"""Money and quantities as people read them: `¥1,234,567.00` exact to the fen,
card-hours as `20,000` or `1,234.5` (not `20000.0`), rates as `30%`."""

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


def format_quantity(value: Decimal | int | float | str | None, places: int = 3) -> str:
    """Thousands separated, at most `places` decimals, no trailing zeros."""
    if value is None or value == "":
        return ""
    try:
        number = Decimal(str(value)).quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)
    except InvalidOperation:
        return ""
    text = f"{number:,.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_percent(value: Decimal | int | float | str | None) -> str:
    """A rate (0.3) as a percentage (`30%`, `12.5%`)."""
    if value is None or value == "":
        return ""
    try:
        rate = Decimal(str(value)) * 100
    except InvalidOperation:
        return ""
    return f"{format_quantity(rate, places=2)}%"


@register.filter(name="quantity")
def quantity(value: Decimal | int | float | str | None) -> str:
    return format_quantity(value)


@register.filter(name="percent")
def percent(value: Decimal | int | float | str | None) -> str:
    return format_percent(value)
