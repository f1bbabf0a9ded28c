"""OpenAPI links between the API's operations, added to /api/schema/ after drf-spectacular
has built it (a postprocessing hook: SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]).

A link says where a response's value goes next: the `id` of a batch just accepted is the
`{id}` of `GET /usage/batches/{id}`. drf-spectacular emits none by itself. Clients read
them as documentation of the workflow; schemathesis follows them to fuzz the API as a
sequence of calls (tests/compute/test_api_stateful.py) rather than one request at a
time. Only responses gain a `links` key: the paths and operations stay as they are.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Link(NamedTuple):
    source: str  # operationId whose response holds the value
    statuses: tuple[str, ...]
    name: str
    target: str  # operationId that takes it
    parameters: dict[str, str]  # target parameter → runtime expression
    description: str


LINKS = (
    Link(
        "usage_batch_create",
        ("202", "200"),
        "GetBatch",
        "usage_batch_get",
        {"id": "$response.body#/id"},
        "The batch just accepted (or the first one sent with this Idempotency-Key): poll it.",
    ),
    Link(
        "usage_batch_get",
        ("200",),
        "VoidFirstResult",
        "usage_record_void",
        {"record_id": "$response.body#/results/0/record_id"},
        "Void a record of the batch.",
    ),
    Link(
        "redemption_list",
        ("200",),
        "AcceptFirst",
        "redemption_accept",
        {"id": "$response.body#/results/0/id"},
        "Accept a redemption of the page (only a requested one can be).",
    ),
    Link(
        "redemption_list",
        ("200",),
        "RejectFirst",
        "redemption_reject",
        {"id": "$response.body#/results/0/id"},
        "Reject a redemption of the page (only a requested one can be).",
    ),
    Link(
        "redemption_list",
        ("200",),
        "VoucherOfFirst",
        "voucher_get",
        {"code": "$response.body#/results/0/voucher"},
        "The voucher of a redemption of the page.",
    ),
    Link(
        "redemption_accept",
        ("200",),
        "Voucher",
        "voucher_get",
        {"code": "$response.body#/voucher"},
        "The voucher now billable here.",
    ),
    Link(
        "usage_record_list",
        ("200",),
        "VoidFirst",
        "usage_record_void",
        {"record_id": "$response.body#/results/0/record_id"},
        "Void a record of the page.",
    ),
    Link(
        "usage_record_list",
        ("200",),
        "VoucherOfFirst",
        "voucher_get",
        {"code": "$response.body#/results/0/voucher"},
        "The voucher a record of the page was charged to.",
    ),
    Link(
        "usage_record_void",
        ("200",),
        "Voucher",
        "voucher_get",
        {"code": "$response.body#/voucher"},
        "The voucher the reversal went back to.",
    ),
    Link(
        "settlement_list",
        ("200",),
        "GetFirst",
        "settlement_get",
        {"id": "$response.body#/results/0/id"},
        "A statement of the page with its lines.",
    ),
)

_METHODS = ("get", "post", "put", "patch", "delete")


def add_links(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """drf-spectacular's hook signature; returns the schema with `links` added. A link
    whose operations or response are missing is left out (the schema is built for the
    operations it has, e.g. a filtered one)."""
    operations = {
        operation["operationId"]: operation
        for item in result.get("paths", {}).values()
        for method, operation in item.items()
        if method in _METHODS and "operationId" in operation
    }
    for link in LINKS:
        source, target = operations.get(link.source), operations.get(link.target)
        if source is None or target is None:
            continue
        for status in link.statuses:
            response = source.get("responses", {}).get(status)
            if response is None:
                continue
            response.setdefault("links", {})[link.name] = {
                "operationId": link.target,
                "parameters": dict(link.parameters),
                "description": link.description,
            }
    return result
