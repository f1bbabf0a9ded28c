"""The export writer (portal/exports.py) and the audit trail's export: formula-like text
made inert but numbers kept, CSV with a byte-order mark, rows read in keyset chunks,
and the audit page's filter, readers and 404s."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from portal import exports
from portal.audit import audit_record
from portal.models import AuditEvent
from tests.exporting import csv_rows, xlsx_rows
from tests.vouchers.test_exports import client_for


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+86 138", "'+86 138"),
        ("-x", "'-x"),
        ("@A1", "'@A1"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("a=b", "a=b"),
        ("深度河流", "深度河流"),
        (Decimal("-12.50"), Decimal("-12.50")),
        (-3, -3),
        (None, ""),
        (True, 1),
    ],
)
def test_cells_neutralise_text_but_keep_numbers(value, cell):
    assert exports.cell(value) == cell


def test_keyset_rows_reads_every_row_once_in_chunks(
    shanghai, monkeypatch, django_assert_num_queries
):
    monkeypatch.setattr(exports, "CHUNK_ROWS", 3)
    for n in range(7):
        audit_record(action=f"test.{n}", city=shanghai.city)
    events = AuditEvent.objects.filter(city=shanghai.city, action__startswith="test.")
    with django_assert_num_queries(3):  # 3 + 3 + 1 rows
        rows = list(exports.keyset_rows(events, ["seq", "action"], key="seq", descending=True))
    assert [a for _s, a in rows] == [f"test.{n}" for n in reversed(range(7))]
    with django_assert_num_queries(3):  # 3 + 3 + 0: an exact multiple needs one more look
        six = events.exclude(action="test.6")
        assert len(list(exports.keyset_rows(six, ["seq"], key="seq"))) == 6


@pytest.fixture
def trail(shanghai, shenzhen):
    audit_record(action="=cmd|' /C calc'!A0", city=shanghai.city, actor=shanghai.manager)
    audit_record(action="voucher.issue", city=shanghai.city, data={"amount": "-5"})
    audit_record(action="voucher.issue", city=shenzhen.city, data={"secret": "深圳"})


def test_audit_export_is_the_pages_events_filtered(trail, shanghai):
    client = client_for(shanghai.auditor)
    page = client.get("/shanghai/staff/audit/?q=voucher")
    on_screen = [e.seq for e in page.context["page"]]
    url = reverse("portal:audit_export_csv", args=["shanghai"])
    rows = csv_rows(client.get(url + "?q=voucher"))
    assert [int(r[0]) for r in rows[1:]] == on_screen
    assert rows[0][:5] == ["#", "Time", "Actor", "Action", "Action code"]
    everything = csv_rows(client.get(url))
    actions = [r[4] for r in everything[1:]]
    assert "'=cmd|' /C calc'!A0" in actions
    assert "=cmd|' /C calc'!A0" not in actions
    assert all("深圳" not in ",".join(r) for r in everything)
    sheet = xlsx_rows(client.get(reverse("portal:audit_export_xlsx", args=["shanghai"])))
    # The export before this one is audited too: it is the newest event, first.
    assert sheet[1][3:5] == ["Data exported: audit", "export.audit"]
    event = AuditEvent.objects.filter(city=shanghai.city).order_by("-seq").first()
    assert (event.action, event.actor, event.data) == (
        "export.audit",
        shanghai.auditor,
        {"format": "xlsx", "filter": {}},
    )


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_audit_export_for_the_pages_readers_only(trail, world, fmt):
    url = reverse(f"portal:audit_export_{fmt}", args=["shanghai"])
    before = AuditEvent.objects.count()
    for user in [*world["shenzhen"].staff(), world["startup"], world["outsider"]]:
        assert client_for(user).get(url).status_code == 404
    sh = world["shanghai"]
    for user in (sh.reviewer, sh.approver):
        assert client_for(user).get(url).status_code == 403
    assert AuditEvent.objects.count() == before
    assert client_for(sh.manager).get(url).status_code == 200


def test_xlsx_rows_past_a_worksheets_limit_go_on_to_the_next(monkeypatch):
    import io
    import zipfile

    monkeypatch.setattr(exports, "XLSX_MAX_ROWS", 3)  # the header and two rows a sheet
    data = b"".join(exports._xlsx_stream(["n"], [(n,) for n in range(5)], sheet="usage"))
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    sheets = sorted(n for n in names if n.startswith("xl/worksheets/sheet"))
    assert sheets == [
        "xl/worksheets/sheet1.xml",
        "xl/worksheets/sheet2.xml",
        "xl/worksheets/sheet3.xml",
    ]
    workbook = zipfile.ZipFile(io.BytesIO(data)).read("xl/workbook.xml").decode()
    assert 'name="usage (3)"' in workbook
