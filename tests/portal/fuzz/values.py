"""Values for the fuzzed fields: what a person might send and what nobody should."""

from __future__ import annotations

import io
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from tests.vouchers.conftest import (
    PDF,
    PNG,
)
from vouchers import eligibility

# --- values -----------------------------------------------------------------------------

OMIT = object()  # the field is left out of the request

# Text no column can hold is refused whole by portal.inputs (a 400), so random text
# leaves NUL out to reach the views; NUL itself is among the literals below.
CHARS = st.characters(codec="utf-8", exclude_characters="\x00")

NASTY_NUMBERS = [
    "NaN", "nan", "-NaN", "sNaN", "Infinity", "-Infinity", "inf", "1e999", "-1e999",
    "1e-999", "1E+5", "-0", "-0.0", "0", "-1", "0.000000001", "1_000", "1,000", "0x10",
    "١٢٣", "１２３", "²", "12.345", "¥100", " 7 ", "+5", "9" * 40, "-" + "9" * 40,
    str(2**63), str(2**63 - 1), str(-(2**63) - 1), str(2**31), "32768", "65536",
]  # fmt: skip
NASTY_DATES = [
    "0000-00-00", "2026-02-30", "2026-02-29", "9999-12-31", "0001-01-01", "10000-01-01",
    "-2026-01-01", "2026-13-45", "2026-11-02T25:61:61", "9999-12-31T23:59:59",
    "0001-01-01T00:00:00", "2026-11-02T08:00:00+99:00", "2026-11", "0000-00", "9999-99",
    "2026-", "20261102", "2026/11/02", "02.11.2026",
]  # fmt: skip
NASTY_JSON = [
    "null", "true", "[]", "{}", "[{}]", '"x"', "[" * 10 + "]" * 10, '{"a":',
    "[1e999]", "[NaN]", "[-Infinity]", '["\\u0000"]', '["\\ud800"]',
    '[{"name": "x", "weight": NaN, "max": 10}]', '[{"name": "x", "weight": 1, "max": 1e999}]',
    '[{"type": "founded_within_years", "years": 1e999}]',
]  # fmt: skip
NASTY_TEXT = [
    "", " ", "\u202e", "\u200b", "\ufeff", "\ufffd", "🚀🚀🚀", "é", "𝟘", "\r\n", "\t", "\x7f",
    "\x1b[31m", "\x01\x02\x03", "\x85", "\u2028", "<script>alert(1)</script>",
    "'; DROP TABLE x; --", "%s%n%x", "%(n)s", "{{ 7*7 }}", "{% debug %}", "../../etc/passwd",
    "%00", "%", "\\", '"', "'", "\x00",
]  # fmt: skip


def repeated(*pieces: tuple[str, int, str]) -> st.SearchStrategy[str]:
    """Long values, built when drawn (their repr in a failure report stays short)."""
    return st.sampled_from(pieces).map(lambda piece: piece[0] * piece[1] + piece[2])


# Just over each max_length of the forms (100, 300, 2,000, 5,000) and the 20,000
# characters of a JSON setting.
long_text = repeated(
    ("a", 101, ""), ("长", 301, ""), ("x", 2001, ""), ("y", 5001, ""), ("z", 20_001, "")
)
# Python's int() refuses more than 4,300 digits.
long_number = repeated(("9", 4301, ""), ("1", 1, "0" * 5000), ("0", 1000, "1"))
long_json = repeated(
    ("[", 5000, ""), ("[1,", 6000, "1]"), ('[{"name": "x", "weight": 1, "max": 1},', 40, "{}]")
)

nasty_words = st.one_of(
    st.text(CHARS, max_size=30),
    st.sampled_from(NASTY_TEXT + NASTY_NUMBERS + NASTY_JSON),
    long_text,
)
nasty_text = st.one_of(nasty_words, long_number)
nasty_number = st.one_of(
    st.sampled_from(NASTY_NUMBERS),
    long_number,
    st.integers().map(str),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.floats().map(repr),
    nasty_text,
)
nasty_date = st.one_of(st.sampled_from(NASTY_DATES), st.dates().map(str), nasty_number)
# Numbers of more than 4,300 digits too: int() refuses them (a 500 the fuzzer found,
# test_a_posted_id_of_4301_digits_is_a_404 below).
nasty_id = st.one_of(
    st.sampled_from(
        ["0", "-1", "1.0", "١", "9" * 30, str(2**63), "1 2", "abc", "", "9" * 4300, "9" * 4301]
    ),
    st.integers(min_value=1).map(str),
    nasty_words,
)
nasty_bool = st.sampled_from(["on", "off", "yes", "no", "true", "false", "0", "1", "", "x"])


def nasty_values(strategy: st.SearchStrategy) -> st.SearchStrategy:
    """A spoilt value: one of `strategy`, several values for one name, or none at all."""
    return st.one_of(strategy, st.lists(strategy, min_size=2, max_size=3), st.just(OMIT))


@dataclass
class Field:
    valid: st.SearchStrategy
    nasty: st.SearchStrategy


def text(*valid: str, words: bool = True) -> Field:
    some = st.sampled_from(valid) if valid else st.text(CHARS, min_size=1, max_size=20)
    if words and valid:
        some = st.one_of(some, st.text(CHARS, min_size=1, max_size=20))
    return Field(some, nasty_text)


def number(low: int | Decimal = 0, high: int | Decimal = 10**6, places: int = 0) -> Field:
    if places:
        valid = st.decimals(low, high, places=places).map(str)
    else:
        valid = st.integers(int(low), int(high)).map(str)
    return Field(valid, nasty_number)


def choice(*values: str) -> Field:
    return Field(
        st.sampled_from(values), st.one_of(nasty_text, st.sampled_from(values).map(str.upper))
    )


def ids(*values: object, many: bool = False) -> Field:
    one = st.sampled_from([str(v) for v in values])
    return Field(st.lists(one, min_size=1, max_size=3) if many else one, nasty_id)


def boolean() -> Field:
    return Field(st.sampled_from(["on", OMIT]), nasty_bool)


def day(*valid: str) -> Field:
    return Field(st.sampled_from(valid or ("2024-03-01", "")), nasty_date)


def moment() -> Field:
    return Field(st.sampled_from(["", "2026-01-01T00:00", "2027-12-31 23:59"]), nasty_date)


def rows(prefix: str, *row_fields: dict[str, Field]) -> dict[str, Field]:
    """A formset of the program editor (vouchers.program_forms): its management fields
    and one set of fields per row, positions and "remove" boxes included."""
    fields = {
        f"{prefix}-TOTAL_FORMS": Field(st.just(str(len(row_fields))), nasty_number),
        f"{prefix}-INITIAL_FORMS": Field(st.sampled_from(["0", "1"]), nasty_number),
    }
    for i, row in enumerate(row_fields):
        row = {
            **row,
            "ORDER": Field(st.sampled_from([OMIT, str(i + 1), "1"]), nasty_number),
            "DELETE": Field(st.just(OMIT), nasty_bool),
        }
        fields |= {f"{prefix}-{i}-{name}": spec for name, spec in row.items()}
    return fields


RUBRIC_ROWS = rows(
    "rubric",
    *(
        {
            "name": text(name),
            "weight": number(Decimal("0.01"), 100, places=2),
            "max": number(1, 1000),
        }
        for name in ("team", "plan")
    ),
)
DOCUMENT_ROWS = rows(
    "docs",
    {
        "doc_type": choice("business_licence", "invoice", "tax_certificate"),
        "custom": Field(st.just(OMIT), nasty_text),
    },
    {"doc_type": choice("__custom__"), "custom": text("x-custom")},
)
_RULE_ROW = {
    "type": choice(*sorted(eligibility.CATALOGUE)),
    "years": Field(st.sampled_from([OMIT, ""]), nasty_number),
    "max_headcount": Field(st.sampled_from([OMIT, ""]), nasty_number),
    "max_revenue": Field(st.sampled_from([OMIT, ""]), nasty_number),
    "cap": Field(st.sampled_from([OMIT, ""]), nasty_number),
}
RULE_ROWS = rows(
    "rules",
    _RULE_ROW,
    {**_RULE_ROW, "type": choice("founded_within_years"), "years": number(1, 100)},
    {**_RULE_ROW, "type": choice("max_revenue"), "max_revenue": number(0, 10**13, places=2)},
)


class Upload(io.BytesIO):
    """A file as a browser sends it, whatever its name (even none)."""

    def __init__(self, name: str, content: bytes) -> None:
        super().__init__(content)
        self.name = name

    def __repr__(self) -> str:
        return f"Upload({self.name!r}, {self.getvalue()[:16]!r}…)"


_UPLOAD_NAMES = ["licence.pdf", "a.PNG", "x.jpg", "", ".pdf", "../../etc/passwd", "a\\b.pdf"]
uploads = st.builds(
    lambda name, head, rest: Upload(name, head + rest),
    st.one_of(
        st.sampled_from(_UPLOAD_NAMES),
        st.text(CHARS, max_size=30),
        repeated(("长", 300, ".pdf"), ("a", 5000, ".png")),
    ),
    st.sampled_from([PDF, PNG, b"\xff\xd8\xff", b"%PDF", b"", b"GIF89a", b"<html>"]),
    st.binary(max_size=64),
)


def form_values(fields: dict[str, Field]) -> st.SearchStrategy[dict[str, Any]]:
    """A valid form with no field, one field or several fields spoilt."""
    names = sorted(fields)
    valid = st.fixed_dictionaries({name: fields[name].valid for name in names})
    one = st.sampled_from(names).flatmap(
        lambda name: nasty_values(fields[name].nasty).map(lambda value: {name: value})
    )
    several = st.fixed_dictionaries(
        {}, optional={name: nasty_values(fields[name].nasty) for name in names}
    )
    spoilt = st.one_of(st.just({}), one, several) if names else st.just({})

    def merged(pair: tuple[dict, dict]) -> dict:
        data = {**pair[0], **pair[1]}
        return {name: value for name, value in data.items() if value is not OMIT}

    return st.tuples(valid, spoilt).map(merged)
