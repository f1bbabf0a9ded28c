"""`{{ entry.actor_label|actor }}` and `{{ entry.memo|memo }}`: stored English labels in
the reader's language (portal.stored_text)."""

from __future__ import annotations

from django import template

from portal.stored_text import actor_text, memo_text

register = template.Library()


@register.filter(name="actor")
def actor(label: str) -> str:
    return actor_text(label or "")


@register.filter(name="memo")
def memo(text: str) -> str:
    return memo_text(text or "")
