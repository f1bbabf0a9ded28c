"""The one domain error type. Services raise it; views turn it into form errors or
messages (`portal.forms.apply_domain_error`), the API into its error body."""

from __future__ import annotations


class DomainError(Exception):
    """A rule of the domain refused an action. `code` is snake_case and stable."""

    def __init__(
        self, message: str, *, code: str = "invalid", fields: dict[str, list[str]] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.fields = fields or {}


def error_body(code: str, message: str, fields: dict[str, list[str]] | None = None) -> dict:
    """The API's error body (docs/api.md): `{"error": {"code", "message", "fields"?}}`."""
    error: dict = {"code": code, "message": str(message)}
    if fields:
        error["fields"] = {k: [str(m) for m in v] for k, v in fields.items()}
    return {"error": error}
