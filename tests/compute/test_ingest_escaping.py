"""The two boundaries where ingestion writes text itself: COPY lines (`copy_text`) and
the results' JSON (`json_string`). Every character, hostile or not, comes back as it
went in (or as U+FFFD where PostgreSQL cannot hold it)."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from compute.ingest.results import json_string
from portal.db import copy_lines_plain, copy_rows, copy_text, text_storable

# Every code point below U+3000 (controls, quotes, backslash, tab, newline, CR, NUL,
# Latin, CJK punctuation), the surrogates and a few beyond the BMP.
HOSTILE = [chr(c) for c in range(0x3000)] + [
    "\ud800",
    "\udfff",
    "\ud83d\ude00",
    "😀",
    "\U0010ffff",
    "\\N",
    "\\.",
    "a\tb\nc\rd\\e",
    '"}]',
]


@pytest.mark.django_db
def test_copy_text_round_trips_every_character():
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE escaping_probe (n int, value text)")
        lines = "".join(f"{n}\t{copy_text(value)}\n" for n, value in enumerate(HOSTILE))
        copy_rows("COPY escaping_probe (n, value) FROM STDIN", lines)
        cursor.execute("SELECT n, value FROM escaping_probe ORDER BY n")
        stored = dict(cursor.fetchall())
    assert len(stored) == len(HOSTILE)
    for n, value in enumerate(HOSTILE):
        assert stored[n] == text_storable(value), repr(value)


def test_json_string_round_trips_every_character():
    for value in HOSTILE:
        literal = json_string(value)
        assert json.loads(literal) == text_storable(value), repr(value)
        # Always one JSON string: nothing it holds can end it early.
        assert json.loads(f"[{literal}, 1]")[1] == 1


def test_a_plain_record_id_is_written_as_it_is():
    assert json_string("dc-2026-11-000001") == '"dc-2026-11-000001"'
    assert json_string('a"b') == '"a\\"b"'


def test_copy_lines_plain_says_no_to_any_field_copy_text_would_change():
    def line(value: str) -> str:
        return f"1\t{value}\t3\n"

    assert copy_lines_plain(line("dc-1") + line("算力 H20"), lines=2, columns=3)
    for value in HOSTILE:
        plain = copy_text(value) == value
        assert copy_lines_plain(line(value), lines=1, columns=3) == plain, repr(value)
