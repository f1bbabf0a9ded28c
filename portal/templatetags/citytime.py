"""`{{ moment|city_time:city }}` and `{{ day|city_date:city }}`: portal.citytime in
templates."""

from __future__ import annotations

from django import template

from portal.citytime import city_date as _city_date
from portal.citytime import city_datetime

register = template.Library()


@register.filter(name="city_time")
def city_time(value, city) -> str:
    return city_datetime(value, city)


@register.filter(name="city_date")
def city_date(value, city) -> str:
    return _city_date(value, city)
