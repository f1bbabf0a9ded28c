"""Exports of list pages as CSV or XLSX, streamed in constant memory (issue #12 item 7).

Every app builds its own export views; they share this writer. A view gives the column
headers (already translated: the user's language), an iterator of row tuples and a
filename; the writer streams the file:

- CSV: UTF-8 with a byte-order mark (Excel on Windows reads UTF-8 only with it), a few
  hundred rows per chunk written to the socket as they come from the database; or, for
  the exports of millions of rows, written by PostgreSQL itself (`sql_rows`,
  `copy_csv_stream`: COPY of a query whose columns are already cells).
- XLSX: XlsxWriter in `constant_memory` mode (each row is flushed to a temporary file as
  it is written, so memory does not grow with the rows) into a temporary file that is
  then streamed and deleted. Past a worksheet's 1,048,576 rows the rows go on to a
  second worksheet headed like the first.

Rows come from the database in chunks (`keyset_rows`: by primary key, for the tables of
millions of rows; `QuerySet.iterator(chunk_size=…)`, a server-side cursor, elsewhere), so
a million-row export never holds its rows in memory.

Cells a spreadsheet would run as a formula (text starting with `=`, `+`, `-`, `@`, tab
or carriage return: OWASP's "CSV injection") are neutralised with a leading `'`. Only
text is: numbers stay numbers (a negative amount is not a formula).

Every export is an audit event, `export.<kind>` with its filter (`export_record`).
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import xlsxwriter
from django.db import connections
from django.db.models import Case, CharField, F, Func, IntegerField, QuerySet, Value, When
from django.db.models.functions import Cast
from django.http import StreamingHttpResponse
from django.utils import timezone, translation

from portal.audit import audit_record
from portal.citytime import city_zone
from portal.http import SignedInRequest
from portal.models import City, User

# Text starting with one of these is run as a formula by Excel, LibreOffice and Sheets.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CHUNK_ROWS = 2000  # rows per database round trip and per write to the socket
COPY_BLOCK = 256 * 1024  # bytes of PostgreSQL's CSV per write to the socket
XLSX_MAX_ROWS = 1_048_576  # a worksheet's rows (the header's included); more go on the next


class ExportFormat(StrEnum):
    CSV = "csv"
    XLSX = "xlsx"


CONTENT_TYPES = {
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def neutralise(value: str) -> str:
    """Text a spreadsheet would run as a formula, made inert with a leading `'`."""
    if value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _datetime(value: datetime) -> str:
    return str(timezone.localtime(value).replace(tzinfo=None, microsecond=0))


# By exact type (one dict lookup a cell: a million-row export has ten million cells).
_CELLS: dict[type, Callable[[Any], Any]] = {
    str: neutralise,
    int: lambda v: v,
    Decimal: lambda v: v,
    float: lambda v: v,
    bool: lambda v: 1 if v else 0,
    type(None): lambda v: "",
    datetime: _datetime,
    date: lambda v: v.isoformat(),
}


def cell(value: Any) -> Any:
    """A database value as a cell: numbers stay numbers (Decimal kept exact for CSV),
    datetimes in the current time zone (the city's) without their microseconds,
    booleans as 1/0, None empty, anything else as neutralised text."""
    convert = _CELLS.get(type(value))
    if convert is None:
        return neutralise(str(value))
    return convert(value)


_AS_IS = frozenset({int, Decimal, float})


def cells(row: Sequence[Any]) -> list[Any]:
    """`cell` over a row, with text and numbers (nearly every cell) handled inline: a
    function call per cell is most of a big export's time."""
    return [
        ("'" + v if v.startswith(FORMULA_PREFIXES) else v)
        if type(v) is str
        else (v if type(v) in _AS_IS else cell(v))
        for v in row
    ]


def local_time(field: str, zone: str) -> Func:
    """`field` (a timestamp) as `YYYY-MM-DD HH:MM:SS` text in `zone`, formatted by
    PostgreSQL: for the big exports, a million timestamps neither parsed nor converted
    in Python."""
    return Func(
        Func(Value(zone), F(field), function="timezone"),
        Value("YYYY-MM-DD HH24:MI:SS"),
        function="to_char",
        output_field=CharField(),
    )


class Neutralised(Func):
    """`neutralise` in SQL, for the columns of an export that PostgreSQL writes itself
    (`copy_csv_stream`): text starting with a formula's prefix gets a leading `'`. The
    empty text becomes NULL, which `COPY` writes as an empty cell (an empty string it
    would quote), as the csv module does."""

    output_field = CharField()
    arity = 1

    def as_sql(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.source_expressions[0])
        prefixes = ", ".join("'" + p.replace("'", "''") + "'" for p in FORMULA_PREFIXES)
        return (
            f"CASE WHEN left({sql}, 1) IN ({prefixes}) THEN '''' || {sql} "
            f"ELSE NULLIF({sql}, '') END",
            (*params, *params, *params),
        )


def choice_label(field: str, choices: Iterable[tuple[str, Any]]) -> Neutralised:
    """A choice field as its label in the current language, in SQL (as `labelled`)."""
    whens = [When(**{field: code}, then=Value(str(label))) for code, label in choices]
    return Neutralised(Case(*whens, default=F(field), output_field=CharField()))


def flag(field: str) -> Cast:
    """A boolean as 1/0, in SQL (as `cell`)."""
    return Cast(field, IntegerField())


def keyset_rows(
    queryset: QuerySet, fields: Sequence[str], *, key: str = "id", descending: bool = False
) -> Iterator[tuple]:
    """The queryset's `fields` (the first of which is `key`) in order of `key`, read
    CHUNK_ROWS at a time with `key > last` (or `<`): each chunk one indexed query, no
    cursor held open between them, nothing kept but the last key. Works under
    PgBouncer's transaction pooling, where server-side cursors cannot be used."""
    assert fields[0] == key
    order = f"-{key}" if descending else key
    lookup = f"{key}__lt" if descending else f"{key}__gt"
    last = None
    while True:
        chunk_qs = queryset.order_by(order)
        if last is not None:
            chunk_qs = chunk_qs.filter(**{lookup: last})
        chunk = list(chunk_qs.values_list(*fields)[:CHUNK_ROWS])
        yield from chunk
        if len(chunk) < CHUNK_ROWS:
            return
        last = chunk[-1][0]


def _csv_stream(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow([neutralise(str(h)) for h in headers])
    pending = 0
    for row in rows:
        writer.writerow(cells(row))
        pending += 1
        if pending >= CHUNK_ROWS:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    yield buffer.getvalue().encode()


def copy_csv_stream(headers: Sequence[str], rows: QuerySet) -> Iterator[bytes]:
    """The CSV of `rows` (a `values_list` queryset, ordered, whose columns are already
    cells: text through `Neutralised`, booleans through `flag`, times through
    `local_time`) written by PostgreSQL: `COPY (…) TO STDOUT (FORMAT csv)`, read a row
    at a time from the socket and passed on in blocks of COPY_BLOCK bytes. No Python
    per cell: a million rows in seconds, in constant memory (the server waits while the
    client is slow to read). One statement, so it works under PgBouncer's transaction
    pooling; a download stopped half-way cancels it."""
    head = io.StringIO()
    head.write("\ufeff")
    csv.writer(head, lineterminator="\n").writerow([neutralise(str(h)) for h in headers])
    yield head.getvalue().encode()
    connection = connections[rows.db]
    sql, params = rows.query.get_compiler(using=rows.db).as_sql()
    statement = f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)"
    start = time.monotonic()
    # psycopg's own cursor: Django's debug wrapper's copy() takes no parameters.
    with connection.cursor() as cursor, cursor.cursor.copy(statement, params) as copy:
        block: list[bytes] = []
        size = 0
        for data in copy:
            block.append(data)
            size += len(data)
            if size >= COPY_BLOCK:
                yield b"".join(block)
                block, size = [], 0
        yield b"".join(block)
    if connection.queries_logged:  # Django's cursor does not see COPY: counted here
        connection.queries_log.append({"sql": statement, "time": f"{time.monotonic() - start:.3f}"})


def _xlsx_stream(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], sheet: str
) -> Iterator[bytes]:
    handle, path = tempfile.mkstemp(prefix="suanli-export-", suffix=".xlsx")
    os.close(handle)
    try:
        workbook = xlsxwriter.Workbook(
            path,
            {
                "constant_memory": True,
                "strings_to_formulas": False,
                "strings_to_urls": False,
                "strings_to_numbers": False,
                "tmpdir": tempfile.gettempdir(),
            },
        )
        bold = workbook.add_format({"bold": True})
        sheets = 0
        row_number = XLSX_MAX_ROWS
        for row in rows:
            if row_number == XLSX_MAX_ROWS:  # a new worksheet, headed like the first
                sheets += 1
                name = sheet[:26] if sheets == 1 else f"{sheet[:26]} ({sheets})"
                worksheet = workbook.add_worksheet(name)
                for col, header in enumerate(headers):
                    worksheet.write_string(0, col, neutralise(str(header)), bold)
                write_string, write_number = worksheet.write_string, worksheet.write_number
                row_number = 1
            for col, value in enumerate(cells(row)):
                if type(value) is str:
                    if value:
                        write_string(row_number, col, value)
                else:
                    # A spreadsheet's numbers are binary doubles: exact to the fen
                    # for any amount under 10^13 yuan.
                    write_number(row_number, col, float(value))
            row_number += 1
        if not sheets:  # no rows: the headers alone
            worksheet = workbook.add_worksheet(sheet[:26])
            for col, header in enumerate(headers):
                worksheet.write_string(0, col, neutralise(str(header)), bold)
        workbook.close()
        with open(path, "rb") as file:
            while block := file.read(256 * 1024):
                yield block
    finally:
        os.unlink(path)


def export_record(
    *,
    actor: User,
    kind: str,
    fmt: str,
    filters: dict[str, Any],
    city: City | None = None,
    scope: dict[str, Any] | None = None,
    ip: str | None = None,
) -> None:
    """Audit an export before it streams: who took which rows (`export.<kind>` with the
    filter, and for a company or a data center, which one) into the city's chain, or
    the platform's for exports that are not a city's."""
    audit_record(
        action=f"export.{kind}",
        city=city,
        actor=actor,
        data={"format": fmt, "filter": filters, **(scope or {})},
        ip=ip,
    )


def _within(stream: Iterator[bytes], language: str | None, zone) -> Iterator[bytes]:
    """The stream written in the request's language and the city's time zone: it runs
    after the view has returned, while the server sends the response."""
    with translation.override(language), timezone.override(zone):
        yield from stream


def export_response(
    request: SignedInRequest,
    *,
    kind: str,
    fmt: str,
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    filename: str,
    filters: dict[str, Any],
    city: City | None = None,
    scope: dict[str, Any] | None = None,
    sql_rows: QuerySet | None = None,
) -> StreamingHttpResponse:
    """Audit the export and stream it. `rows` is consumed lazily, while the response
    is sent, in the user's language and (for a city's export) the city's time zone.
    `sql_rows`, the same rows as a queryset whose columns are already cells (see
    `copy_csv_stream`), has PostgreSQL write the CSV: for the exports of millions."""
    export_record(
        actor=request.user,
        kind=kind,
        fmt=fmt,
        filters=filters,
        city=city,
        scope=scope,
        ip=request.META.get("REMOTE_ADDR"),
    )
    headers = [str(h) for h in headers]
    if fmt == ExportFormat.XLSX:
        stream = _xlsx_stream(headers, rows, sheet=kind)
    elif sql_rows is not None:
        stream = copy_csv_stream(headers, sql_rows)
    else:
        stream = _csv_stream(headers, rows)
    zone = city_zone(city) if city is not None else timezone.get_current_timezone()
    response = StreamingHttpResponse(
        _within(stream, translation.get_language(), zone),
        content_type=CONTENT_TYPES[ExportFormat(fmt)],
    )
    stamp = timezone.localdate().isoformat()
    response["Content-Disposition"] = f'attachment; filename="{filename}-{stamp}.{fmt}"'
    response["Cache-Control"] = "private, no-store"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each chunk on as it comes
    return response


def labelled(choices: Iterable[tuple[str, Any]]) -> Callable[[str], str]:
    """A choice's code → its label in the current language, evaluated now (the rows
    are written after the view returns)."""
    labels = {code: str(label) for code, label in choices}
    return lambda code: labels.get(code, code or "")


def export_filters(data: dict[str, Any]) -> dict[str, Any]:
    """A form's cleaned data as the audit event's filter: model instances by id, the
    empty left out."""
    out: dict[str, Any] = {}
    for name, value in data.items():
        if value in (None, "", [], ()):
            continue
        out[name] = getattr(value, "pk", value)
    return out
