"""A program's terms as applicants read them: `{{ rate|percent }}` (0.30 → 30%),
`{{ program|rules_in_words }}` (vouchers.eligibility.rule_words, in the page's language),
and the system's timeline notes, `{{ change.note|note:app }}` (vouchers.notes)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django import template

from vouchers.eligibility import rule_words
from vouchers.notes import note_text

register = template.Library()


@register.filter(name="percent")
def percent(value: Decimal | str | None) -> str:
    """A rate between 0 and 1 as a percentage, exact: 0.3 → "30%", 0.125 → "12.5%"."""
    if value is None or value == "":
        return ""
    try:
        share = Decimal(str(value)) * 100
    except InvalidOperation:
        return ""
    text = f"{share.normalize():f}" if share != share.to_integral_value() else f"{int(share)}"
    return f"{text}%"


@register.filter(name="rules_in_words")
def rules_in_words(program) -> list[str]:
    return [
        rule_words(rule, program)
        for rule in program.eligibility_rules or []
        if isinstance(rule, dict)
    ]


@register.filter(name="note")
def note(text: str, application=None) -> str:
    """`{{ change.note|note:app }}`: a system-written note in the reader's language
    (vouchers.notes); a person's words as written."""
    return note_text(text or "", application)
