"""`{{ event.action|audit_action }}` and `{{ event|audit_target }}`: the audit trail's
readable names (portal.audit_labels) in templates."""

from __future__ import annotations

from django import template

from portal.audit_labels import audit_action_label, audit_target_label
from portal.models import AuditEvent

register = template.Library()


@register.filter(name="audit_action")
def audit_action(code: str) -> str:
    return audit_action_label(code)


@register.filter(name="audit_target")
def audit_target(event: AuditEvent) -> str:
    return audit_target_label(event.target_type, event.target_id)
