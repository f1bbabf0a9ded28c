"""Pushing usage batches through the API in tests, as JSON or as the exact bytes a
client wrote (shared by the usage-rule, encoding and poison tests)."""

from __future__ import annotations

BATCHES = "/api/v1/usage/batches"


def push(w, records, django_capture_on_commit_callbacks, api=None, **headers):
    with django_capture_on_commit_callbacks(execute=True):
        response = (api or w.api).post(BATCHES, {"records": records}, format="json", **headers)
    return response


def results(w, response, api=None):
    body = (api or w.api).get(f"{BATCHES}/{response.json()['id']}").json()
    assert body["status"] == "done"
    return body


def push_raw(w, body: bytes, django_capture_on_commit_callbacks):
    """A body exactly as a client wrote it (numbers, escapes, whitespace)."""
    with django_capture_on_commit_callbacks(execute=True):
        return w.api.post(BATCHES, data=body, content_type="application/json")


def raw_record(n: int, voucher: str, **fields: str) -> str:
    """One record as JSON text; `fields` are JSON fragments written as they are."""
    values = {
        "record_id": f'"dc-2026-11-{n:06d}"',
        "voucher": f'"{voucher}"',
        "started_at": '"2026-11-02T08:00:00+08:00"',
        "ended_at": '"2026-11-02T20:00:00+08:00"',
        "resource": '"Ascend 910B"',
        "domestic": "true",
        "quantity": '"96.000"',
        "amount": '"100.00"',
        **fields,
    }
    return "{" + ", ".join(f'"{k}": {v}' for k, v in values.items()) + "}"
