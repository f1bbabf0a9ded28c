"""`{% extra_links "slot" obj as links %}`: the links later apps registered for a page
(portal.links), each with `.label` and `.url`."""

from __future__ import annotations

from typing import Any

from django import template

from portal.links import Link, link_list

register = template.Library()


@register.simple_tag
def extra_links(slot: str, obj: Any = None) -> list[Link]:
    return link_list(slot, obj)
