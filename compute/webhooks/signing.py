"""Signing and verifying webhook bodies: HMAC-SHA-256 over `<timestamp>.<body>`.

The timestamp is inside what is signed, so a captured delivery cannot be replayed later
than the receiver's tolerance; the body is signed as the exact bytes sent, so any change
to it fails."""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "Suanli-Signature"
TOLERANCE_SECONDS = 300


def signature_of(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, *, now: float | None = None) -> str:
    """The `Suanli-Signature` value for `body`: `t=<unix seconds>,v1=<hex>`."""
    timestamp = int(now if now is not None else time.time())
    return f"t={timestamp},v1={signature_of(secret, timestamp, body)}"


def signature_verify(
    secret: str,
    header: str,
    body: bytes,
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> bool:
    """True if `header` signs `body` with `secret` and is no older (or newer) than
    `tolerance` seconds. Compared in constant time."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    current = now if now is not None else time.time()
    if abs(current - timestamp) > tolerance:
        return False
    expected = signature_of(secret, timestamp, body)
    return hmac.compare_digest(expected, parts.get("v1", ""))
