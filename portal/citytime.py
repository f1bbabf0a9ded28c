"""Dates and times as a city's people read them: in the city's time zone, with the zone
named, so that an e-mail read in another zone (or a server running in UTC) cannot turn
"the notice ends at 06:43 on the 6th" into "the 5th". Used by pages and e-mails alike
(`{{ value|city_time:city }}`, portal/templatetags/citytime.py)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from django.conf import settings


def city_zone(city) -> ZoneInfo:
    return ZoneInfo(getattr(city, "timezone", None) or settings.TIME_ZONE)


def city_datetime(value: datetime | None, city) -> str:
    """`2026-12-06 06:43 (Asia/Shanghai)` for an aware datetime; "" for None."""
    if value is None:
        return ""
    zone = city_zone(city)
    return f"{value.astimezone(zone):%Y-%m-%d %H:%M} ({zone.key})"


def city_date(value: date | None, city) -> str:
    """`2027-12-05 (Asia/Shanghai)`: a calendar date of the city (a voucher's last valid
    day), its zone named too, since the day ends at the city's midnight."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(city_zone(city)).date()
    return f"{value.isoformat()} ({city_zone(city).key})"
