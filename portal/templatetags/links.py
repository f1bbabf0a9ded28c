"""`{% extra_links "slot" obj as links %}`: the links later apps registered for a page
(portal.links), each with `.label` and `.url`; `{% link_groups "slot" obj as groups %}`:
their groups of links, each with `.title` and `.links`."""

from __future__ import annotations

from typing import Any

from django import template

from portal.links import Link, LinkGroup, link_group_list, link_list

register = template.Library()


@register.simple_tag
def extra_links(slot: str, obj: Any = None) -> list[Link]:
    return link_list(slot, obj)


@register.simple_tag
def link_groups(slot: str, obj: Any = None) -> list[LinkGroup]:
    return link_group_list(slot, obj)
