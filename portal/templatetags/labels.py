"""`{{ value|label_in:labels }}`: a stored choice's label from a dict the view made once
for the page (`choice_labels`), instead of `get_FOO_display` per row, which rebuilds
the field's choices and translates every label on each call (a list of 50 rows spent
a tenth of its time there, issue #12). An unknown value shows as stored."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.filter(name="label_in")
def label_in(value: Any, labels: dict[Any, str]) -> Any:
    return labels.get(value, value)
