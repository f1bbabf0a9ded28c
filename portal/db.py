"""Small helpers for writing to PostgreSQL in bulk (COPY) and for counting several
querysets in one statement, shared by the apps."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable
from datetime import datetime

import psycopg
from django.core.exceptions import EmptyResultSet
from django.db import connection, connections
from django.db.models import F, QuerySet

_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def text_storable(value: str) -> str:
    """`value` as PostgreSQL text (and JSON) can hold it: NUL and unpaired surrogates
    become U+FFFD."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    try:
        value.encode()
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode()
    return value


def sql_list(values: Iterable[object]) -> str:
    """Values for `string_to_array(%s, E'\\n')` in SQL: one text parameter instead of
    an array. Django binds parameters client-side, and quoting a list costs tens of
    microseconds per element (~130 ms for the 5,000 record_ids of a batch); the
    values must not contain a newline (ids, codes and numbers do not)."""
    return "\n".join(map(str, values))


def copy_lines_plain(text: str, *, lines: int, columns: int) -> bool:
    """Whether `text`, `lines` lines built without `copy_text`, is COPY's text format
    as meant: `columns` fields a line and nothing that `copy_text` would change (a
    backslash, tab, newline or carriage return inside a field, NUL, an unpaired
    surrogate). A few passes in C over the whole text (~0.4 ms for a batch of 5,000
    records) instead of a call per field; when it says no, the caller escapes them."""
    if text.count("\n") != lines or text.count("\t") != (columns - 1) * lines:
        return False
    if "\\" in text or "\r" in text or "\x00" in text:
        return False
    if text.isascii():
        return True
    try:  # beyond ASCII, only an unpaired surrogate is left to find
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def copy_text(value: str) -> str:
    """Any string as a field of COPY's text format: storable and escaped."""
    if value.isprintable() and "\\" not in value:  # the common case, as is
        return value
    return text_storable(value).translate(_COPY_ESCAPES)


@functools.cache
def serial_sequence(table: str) -> tuple[str, int]:
    """The sequence of `table`'s id column and the step it takes."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.seqrelid::regclass::text, s.seqincrement FROM pg_sequence s"
            " WHERE s.seqrelid = pg_get_serial_sequence(%s, 'id')::regclass",
            [table],
        )
        return cursor.fetchone()


def new_ids(table: str, count: int) -> tuple[datetime, list[int]]:
    """The transaction's time and `count` fresh, increasing ids for `table`, in one
    round trip: rows written by COPY that others point at need their ids beforehand.
    A sequence that steps by n (the usage records' and ledger entries' step by 5,000)
    hands out n ids per `nextval`."""
    sequence, step = serial_sequence(table)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT now(), array(SELECT nextval(%s::regclass) FROM generate_series(1, %s))",
            [sequence, -(-count // step)],
        )
        now, starts = cursor.fetchone()
    if step == 1:
        return now, starts
    return now, [i for start in starts for i in range(start, start + step)][:count]


def _django_cursor(raw: psycopg.Cursor):
    """`raw` wrapped as Django wraps its own cursors, so that what runs on it passes
    the connection's execute wrappers and is counted by the query-count tests."""
    if connection.queries_logged:
        return connection.make_debug_cursor(raw)  # type: ignore[arg-type]
    return connection.make_cursor(raw)  # type: ignore[arg-type]


def execute_bound(sql: str, params: list) -> None:
    """Execute with the parameters bound by the server, on Django's connection (and in
    its transaction). Django binds client-side: a large text parameter (a batch body
    of up to 10 MB, its results) is then escaped into the SQL text in Python and
    parsed back by PostgreSQL, ~9 ms per 600 kB each way."""
    connection.ensure_connection()
    with _django_cursor(psycopg.Cursor(connection.connection)) as cursor:
        cursor.execute(sql, params)


def copy_rows(sql: str, text: str) -> None:
    """`COPY … FROM STDIN` of `text` (lines of COPY's text format, each field through
    `copy_text`). Counted like a statement by the query-count tests; Django's cursor
    does not see COPY, so it is logged here."""
    with connection.cursor() as cursor:
        start = time.monotonic()
        with cursor.copy(sql) as copy:
            copy.write(text)
        if connection.queries_logged:
            connection.queries_log.append({"sql": sql, "time": f"{time.monotonic() - start:.3f}"})


def tallies_get(tallies: list[tuple[QuerySet, str, int | None]]) -> list[int]:
    """For each `(rows, total, limit)`: how many `rows` there are (no further than
    `limit` if given), or with `total` (a field name) the sum of that field over them
    (0 for none); all in one statement per database, `SELECT (SELECT count(*) FROM
    (…)), …`, instead of a query each. Each queryset's own compiled SQL is the subquery,
    so each counts what its `count()` would."""
    found: dict[int, int] = {}
    statements: dict[str, list[tuple[int, str, list]]] = {}
    for i, (rows, total, limit) in enumerate(tallies):
        rows = rows.order_by()
        rows = rows.values(v=F(total)) if total else rows.values("pk")
        if limit is not None:
            rows = rows[:limit]
        try:
            sql, args = rows.query.get_compiler(using=rows.db).as_sql()
        except EmptyResultSet:  # e.g. `pk__in=[]`: nothing to count
            found[i] = 0
            continue
        what = "COALESCE(SUM(t.v), 0)" if total else "COUNT(*)"
        # The SQL is Django's compiled query (values are parameters), hence the noqa.
        part = f"(SELECT {what} FROM ({sql}) AS t)"  # noqa: S608
        statements.setdefault(rows.db, []).append((i, part, list(args)))
    for alias, parts in statements.items():
        with connections[alias].cursor() as cursor:
            cursor.execute(
                "SELECT " + ", ".join(part for _i, part, _a in parts),
                [arg for _i, _p, args in parts for arg in args],
            )
            for (i, _p, _a), value in zip(parts, cursor.fetchone(), strict=True):
                found[i] = int(value)
    return [found[i] for i in range(len(tallies))]
