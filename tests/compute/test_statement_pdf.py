"""The settlement statement's PDF (issue #14 item 5), read back as text with pypdf:
record ids were cut at ~40 characters so different rows looked identical, there were no
page numbers, and the English file said "Status: Paid (paid)"."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal

import pypdf
import pytest
from django.utils import translation

from compute.settlements import settlement_build
from compute.statements import statement_pdf
from tests.compute.conftest import record

NOV = date(2026, 11, 1)
pytestmark = pytest.mark.usefixtures("eager_tasks")
# 64 characters (the longest id the API takes), alike up to the last four.
LONG_ID = "hpc-cluster-a.partition-gpu.job-2026-11-02T08:00:00Z.step-{:04d}-x"


@pytest.fixture
def statement(ledger_world, shanghai, django_capture_on_commit_callbacks):
    w = ledger_world
    records = [
        record(n, w.voucher.code, record_id=LONG_ID.format(n)[:64], amount=f"{10 + n}.00")
        for n in range(130)
    ]
    with django_capture_on_commit_callbacks(execute=True):
        answer = w.api.post("/api/v1/usage/batches", {"records": records}, format="json")
    assert answer.status_code == 202
    return settlement_build(city=shanghai.city, data_center=w.dc, period=NOV)


def pages_of(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages]


def test_every_record_id_is_whole_and_pages_are_numbered(statement):
    with translation.override("en"):
        pages = pages_of(statement_pdf(statement))
    assert len(pages) >= 3
    for number, text in enumerate(pages, start=1):
        assert f"Page {number} of {len(pages)}" in text
    # Each id whole (its wrapped pieces follow each other in the text), none cut short.
    text = "".join(pages).replace("\n", "")
    ids = [line.record_id for line in statement.lines.all()]
    assert len(ids) == 130 and all(len(i) == 64 for i in ids)
    for record_id in ids:
        assert record_id in text


def test_totals_only_on_the_last_page_and_both_names(statement):
    statement.refresh_from_db()
    expected = sum(Decimal(10 + n) for n in range(130))  # the amounts the test pushed
    with translation.override("en"):
        pages = pages_of(statement_pdf(statement))
    total = f"List price total: ¥{expected:,.2f}"
    assert total in pages[-1]
    assert all(total not in page for page in pages[:-1])
    assert f"Records: {statement.records}" in pages[-1]
    first = pages[0]
    city, dc = statement.city, statement.data_center
    assert f"{city.name_zh} / {city.name_en}" in first
    assert f"{dc.name_zh} / {dc.name_en}" in first
    assert "Status: Draft" in first and "(draft)" not in first


def test_the_pdf_follows_the_readers_language(statement):
    with translation.override("zh-hans"):
        chinese = pages_of(statement_pdf(statement))
    with translation.override("en"):
        english = pages_of(statement_pdf(statement))
    assert "算力券结算单" in chinese[0] and "第 1 页" in chinese[0]
    assert "Computing-voucher settlement statement" in english[0]
    assert "算力券结算单" not in english[0]
