"""Unified social credit codes (统一社会信用代码), GB 32100-2015.

18 characters from `0-9A-HJ-NPQRTUWXY` (no I, O, S, V, Z); the last is a check character
over the first 17 with weights 3^i mod 31: 1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13,
8, 24, 10, 30, 28; check = (31 - sum mod 31) mod 31, written with the same alphabet.
"""

from __future__ import annotations

import random

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def check_character(first17: str) -> str:
    total = sum(ALPHABET.index(ch) * w for ch, w in zip(first17, WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


def credit_code_problem(code: str) -> str | None:
    """None when the code is valid, else what is wrong with it, in words a person can act on
    (English; callers translate)."""
    code = (code or "").strip().upper()
    if len(code) != 18:
        return "length"
    bad = [ch for ch in code if ch not in ALPHABET]
    if bad:
        return "characters"
    if check_character(code[:17]) != code[17]:
        return "check"
    return None


def credit_code_generate(rng: random.Random, *, region: str = "310000") -> str:
    """A valid code for demo data: registration authority 9 (industry and commerce),
    type 1 (enterprise), a region code, a 9-character organisation code and the check."""
    body = "91" + region + "".join(rng.choice(ALPHABET[:10] + "ABCDEFGH") for _ in range(9))
    return body + check_character(body)
