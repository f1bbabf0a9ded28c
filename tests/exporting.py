"""Reading exports back in tests: a streamed CSV or XLSX response as rows of strings."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from xml.etree import ElementTree

_NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}


def body(response) -> bytes:
    assert response.streaming, "exports are streamed"
    return b"".join(response.streaming_content)


def csv_rows(response) -> list[list[str]]:
    data = body(response)
    assert data.startswith("\ufeff".encode()), "CSV starts with a UTF-8 byte-order mark"
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def _unescape(text: str) -> str:
    """OOXML's escapes of control characters (`_x000D_` for a carriage return)."""
    return re.sub(r"_x([0-9A-Fa-f]{4})_", lambda m: chr(int(m.group(1), 16)), text)


def _column(ref: str) -> int:
    letters = re.match(r"[A-Z]+", ref).group()
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n - 1


def xlsx_rows(response) -> list[list[object]]:
    """The first sheet's cells: strings as str (inline or shared), numbers as float."""
    archive = zipfile.ZipFile(io.BytesIO(body(response)))
    shared: list[str] = []
    if "xl/sharedStrings.xml" in archive.namelist():
        root = ElementTree.fromstring(archive.read("xl/sharedStrings.xml"))  # noqa: S314 - ours
        shared = ["".join(t.text or "" for t in si.iter(f"{{{_NS['m']}}}t")) for si in root]
    sheet = ElementTree.fromstring(archive.read("xl/worksheets/sheet1.xml"))  # noqa: S314 - ours
    rows: list[list[object]] = []
    for row in sheet.iterfind(".//m:sheetData/m:row", _NS):
        cells: list[object] = []
        for c in row.iterfind("m:c", _NS):
            col = _column(c.get("r"))
            cells.extend([""] * (col - len(cells)))
            kind = c.get("t")
            if kind == "inlineStr":
                value: object = _unescape("".join(t.text or "" for t in c.iter(f"{{{_NS['m']}}}t")))
            elif kind == "s":
                value = _unescape(shared[int(c.find("m:v", _NS).text)])
            elif c.find("m:f", _NS) is not None:
                value = ("FORMULA", c.find("m:f", _NS).text)
            else:
                value = float(c.find("m:v", _NS).text)
            cells.append(value)
        rows.append(cells)
    return rows
