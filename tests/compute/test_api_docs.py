"""docs/api.md keeps up with the API: every operation the OpenAPI schema publishes, and
every error and rejection code the code can answer with, is documented there. Adding an
endpoint or a code without documenting it fails here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from compute.api.base import STATUS_OF_CODE
from compute.api.serializers import RecordError
from compute.ingest import rejection_messages as _rejection_messages

ROOT = Path(__file__).resolve().parents[2]
API_DOC = ROOT / "docs" / "api.md"
METHODS = ("get", "post", "put", "patch", "delete")
# The schema and its browser describe the API; they are not part of it.
NOT_API = ("/api/schema", "/api/docs")


def _doc() -> str:
    return API_DOC.read_text(encoding="utf-8")


def _operations(client) -> list[tuple[str, str]]:
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    return sorted(
        (method.upper(), path)
        for path, item in paths.items()
        if not path.startswith(NOT_API)
        for method in item
        if method in METHODS
    )


def _operation_pattern(method: str, path: str) -> re.Pattern:
    """`GET /api/v1/vouchers/{code}`, with any name inside the braces (`{id}` or `{pk}`
    in the doc both match the schema's `{id}`), not followed by more path."""
    parts = re.split(r"\{[^}]+\}", path)
    body = r"\{[A-Za-z_][A-Za-z0-9_]*\}".join(re.escape(part) for part in parts)
    return re.compile(rf"\b{method}\s+{body}(?![\w/{{}}])")


def _status_map(node: ast.AST) -> list[str]:
    """The codes of a `{403: "forbidden", 404: "not_found", ...}` literal."""
    if not isinstance(node, ast.Dict) or not node.keys:
        return []
    if not all(isinstance(k, ast.Constant) and isinstance(k.value, int) for k in node.keys):
        return []
    return [v.value for v in node.values if isinstance(v, ast.Constant)]


def _source_codes() -> set[str]:
    """Error codes written into the code: `error_body("<code>", …)`, the status → code
    map of the API's exception handler, and `DomainError(…, code="<code>")` anywhere in
    the apps (a domain error reaches the API with its code)."""
    handler = ROOT / "compute" / "api" / "base.py"
    files = {handler, ROOT / "portal" / "views.py"}
    for app in ("portal", "vouchers", "compute"):
        files.update(p for p in (ROOT / app).rglob("*.py") if "migrations" not in p.parts)
    codes: set[str] = set()
    for path in sorted(files):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if path == handler:
                codes.update(_status_map(node))
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if name == "error_body" and node.args and isinstance(node.args[0], ast.Constant):
                codes.add(node.args[0].value)
            if name == "DomainError":
                codes.update(
                    kw.value.value
                    for kw in node.keywords
                    if kw.arg == "code" and isinstance(kw.value, ast.Constant)
                )
    return {code for code in codes if isinstance(code, str)}


def _rejection_codes() -> set[str]:
    return {"invalid", *_rejection_messages(), *RecordError().fields["code"].choices}


def test_every_operation_of_the_schema_is_documented(client, db):
    operations = _operations(client)
    assert len(operations) >= 10  # the schema was read, not an empty shell
    doc = _doc()
    missing = [f"{m} {p}" for m, p in operations if not _operation_pattern(m, p).search(doc)]
    assert not missing, f"docs/api.md does not document: {missing}"


@pytest.mark.parametrize(
    ("codes", "kind"),
    [
        (lambda: set(STATUS_OF_CODE), "error code of STATUS_OF_CODE"),
        (_source_codes, "error code in the code"),
        (_rejection_codes, "rejection code of a usage record"),
    ],
)
def test_every_code_is_documented(codes, kind):
    found = codes()
    assert {"invalid", "conflict"} <= found  # the codes were found at all
    doc = _doc()
    missing = sorted(code for code in found if f"`{code}`" not in doc)
    assert not missing, f"docs/api.md does not name this {kind}: {missing}"


def test_the_codes_found_include_the_handlers_and_the_rejections():
    """The collectors above see what they are meant to (else the tests pass vacuously)."""
    assert {"not_acceptable", "server_error", "throttled"} <= _source_codes()
    assert {"unknown_voucher", "not_authorized", "voucher_inactive", "outside_validity"} <= (
        _rejection_codes()
    )
