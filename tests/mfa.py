"""A TOTP code as an authenticator app computes it (RFC 6238: SHA-1, 6 digits, 30 s),
written out here rather than taken from the code under test."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import time


def totp_code(secret: str, at: float | None = None) -> str:
    counter = int((time.time() if at is None else at) // 30)
    raw = hmac.new(base64.b32decode(secret), struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = raw[-1] & 0x0F
    value = (struct.unpack(">I", raw[offset : offset + 4])[0] & 0x7FFFFFFF) % 10**6
    return f"{value:06d}"
