"""`{{ chart.table.rows|chart_rows }}`: a chart's table rows (compute/_chart.html) as
HTML in one pass, instead of two nested template loops over every cell: the program
dashboard's six tables were ~40% of its time (issue #12). Every value is escaped as
the template escaped it; the HTML is the same."""

from __future__ import annotations

from collections.abc import Sequence

from django import template
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe

register = template.Library()


@register.filter(name="chart_rows")
def chart_rows(rows: Sequence[Sequence[str]]) -> SafeString:
    html = []
    for category, *cells in rows:
        tds = "".join(f'<td class="money">{conditional_escape(cell)}</td>' for cell in cells)
        html.append(
            f'\n        <tr><th scope="row">{conditional_escape(category)}</th>{tds}</tr>\n      '
        )
    return mark_safe("".join(html))  # noqa: S308 (every value escaped above)
