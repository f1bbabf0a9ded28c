"""The audit trail's export (issue #12 item 7): the city's events as the audit page
filters them, as CSV or XLSX, for its program managers and auditors (the page's own
readers). Streamed by `portal.exports`, a chunk of events at a time, newest first as on
the page, times in the city's zone; the export itself is audited (`export.audit`)."""

from __future__ import annotations

import json
from collections.abc import Iterator

from django.db.models import QuerySet
from django.http import Http404, HttpResponseBase
from django.utils.translation import gettext as _

from portal import selectors
from portal.audit_labels import audit_action_label, audit_target_label
from portal.audit_trail import audit_filters
from portal.citytime import city_zone
from portal.exports import ExportFormat, export_filters, export_response, keyset_rows, local_time
from portal.http import SignedInRequest
from portal.models import AuditEvent, Role
from portal.stored_text import actor_text
from portal.tenancy import staff_required


def audit_export_rows(events: QuerySet[AuditEvent], zone: str) -> Iterator[tuple]:
    """The events as the page shows them (the action's and object's names in the
    user's language) and the codes beside them, with their data and hash."""
    events = events.annotate(at=local_time("created_at", zone))
    fields = [
        "seq",
        "at",
        "actor_label",
        "action",
        "target_type",
        "target_id",
        "data",
        "ip",
        "hash",
    ]
    for seq, at, actor, action, target_type, target_id, data, ip, digest in keyset_rows(
        events, fields, key="seq", descending=True
    ):
        yield (
            seq,
            at,
            actor_text(actor),
            audit_action_label(action),
            action,
            audit_target_label(target_type, target_id) if target_type else "",
            json.dumps(data, ensure_ascii=False, sort_keys=True) if data else "",
            ip,
            digest,
        )


@staff_required(Role.AUDITOR, Role.PROGRAM_MANAGER)
def audit_export(request: SignedInRequest, city_slug: str, fmt: str) -> HttpResponseBase:
    if fmt not in {f.value for f in ExportFormat}:
        raise Http404
    _form, filters = audit_filters(request, request.city)
    events = selectors.audit_event_list(city=request.city, **filters)
    headers = [
        "#",
        _("Time"),
        _("Actor"),
        _("Action"),
        _("Action code"),
        _("Object"),
        _("Data"),
        _("IP address"),
        _("Hash"),
    ]
    return export_response(
        request,
        kind="audit",
        fmt=fmt,
        headers=headers,
        rows=audit_export_rows(events, city_zone(request.city).key),
        filename=f"audit-{request.city.slug}",
        filters=export_filters(filters),
        city=request.city,
    )
