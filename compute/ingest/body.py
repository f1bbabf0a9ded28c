"""A batch's request body: the bytes as received, parsed once for its envelope, and its
records read back exactly when a worker applies it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

MAX_RECORDS = 5000
MAX_BODY_BYTES = 10 * 1024 * 1024  # docs/api.md's "10 MB", as 10 MiB


class Inexact(Exception):
    """A JSON number was read as a float: read the body again with exact decimals."""


class NonFinite(str):
    """`NaN`, `Infinity` or `-Infinity` in a body: Python's `json` reads them (orjson
    does not), but no record may carry them. Kept as this string, so the record holding
    one is rejected as `invalid` like any other bad number and the stored body stays
    valid JSON; a float NaN would instead fail the whole batch on every retry."""


def loads_exact(data: bytes | str) -> Any:
    return json.loads(data, parse_float=Decimal, parse_constant=NonFinite)


@dataclass(frozen=True, slots=True)
class BatchBody:
    """A batch's request body: the text stored, its digest and its parsed envelope."""

    text: str
    digest: str
    data: Any

    @classmethod
    def parse(cls, raw: bytes) -> BatchBody:
        """Parse a request body; `ValueError` if it is not JSON.

        orjson reads the common case several times faster than `json`; what it refuses
        although `json` reads it (unpaired surrogates, numbers beyond a double, a BOM,
        UTF-16, NaN) is parsed again by `json` and stored re-encoded as ASCII JSON, so
        the records it holds get their per-record rejections like any other."""
        digest = hashlib.sha256(raw).hexdigest()
        try:
            return cls(raw.decode(), digest, orjson.loads(raw))
        except (orjson.JSONDecodeError, UnicodeDecodeError):
            pass
        try:
            data = loads_exact(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as error:
            raise ValueError("not JSON") from error
        return cls(json.dumps(data, default=str), digest, data)

    @classmethod
    def of_records(cls, records: list[Any]) -> BatchBody:
        """The body of records the portal got some other way (a data center's feed)."""
        text = json.dumps({"records": records}, separators=(",", ":"), default=str)
        return cls(text, hashlib.sha256(text.encode()).hexdigest(), {"records": records})


def body_records(text: str, *, exact: bool = False) -> list[Any]:
    """The records of a stored body. Numbers with a fraction come back as floats unless
    `exact` (slower): callers that need their digits ask again on `Inexact`."""
    if not exact:
        try:
            records: list[Any] = orjson.loads(text)["records"]
            return records
        except orjson.JSONDecodeError:
            pass
    exact_records: list[Any] = loads_exact(text)["records"]
    return exact_records
