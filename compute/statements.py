"""Settlement statements as files: CSV (UTF-8 with a BOM, so spreadsheet programs open
Chinese correctly) and PDF (reportlab; its built-in CID font STSong-Light renders
Chinese without shipping a font file)."""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Callable

from compute.models import Settlement, SettlementStatus
from portal.dbrouter import use_replica


def _from_replica_once_issued(build: Callable[[Settlement], bytes]) -> Callable:
    """Read an issued statement's lines from the replica, if there is one: from issue on
    a statement never changes, so a lagging copy gives the same file. A draft may have
    just been rebuilt on the primary, so it is read there."""

    @functools.wraps(build)
    def read(settlement: Settlement) -> bytes:
        with use_replica(settlement.status != SettlementStatus.DRAFT):
            return build(settlement)

    return read


@_from_replica_once_issued
def statement_csv(settlement: Settlement) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["city", "data_center", "period", "status"])
    writer.writerow(
        [
            settlement.city.name_zh,
            settlement.data_center.name_zh,
            f"{settlement.period:%Y-%m}",
            settlement.status,
        ]
    )
    writer.writerow([])
    writer.writerow(["kind", "record_id", "voucher", "amount", "covered_amount"])
    for line in settlement.lines.order_by("id"):
        writer.writerow(
            [
                line.kind,
                line.record_id,
                line.voucher_code,
                f"{line.amount:.2f}",
                f"{line.covered_amount:.2f}",
            ]
        )
    writer.writerow(
        [
            "total",
            settlement.records,
            "",
            f"{settlement.amount_total:.2f}",
            f"{settlement.covered_total:.2f}",
        ]
    )
    return ("\ufeff" + out.getvalue()).encode("utf-8")


@_from_replica_once_issued
def statement_pdf(settlement: Settlement) -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    font = "STSong-Light"
    if font not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(font))
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4)
    pdf.setTitle(
        f"Settlement {settlement.city.slug} {settlement.data_center.slug} {settlement.period:%Y-%m}"
    )
    _width, height = A4
    left, y = 50, height - 60

    def line(text: str, size: int = 10, gap: int = 15) -> None:
        nonlocal y
        if y < 80:
            pdf.showPage()
            y = height - 60
        pdf.setFont(font, size)
        pdf.drawString(left, y, text)
        y -= gap

    line("算力券结算单 Computing-voucher settlement statement", 15, 24)
    line(f"城市 City: {settlement.city.name_zh} / {settlement.city.name_en}")
    line(
        f"数据中心 Data center: {settlement.data_center.name_zh} / {settlement.data_center.name_en}"
    )
    line(
        f"结算期 Period: {settlement.period:%Y-%m}    "
        f"状态 Status: {settlement.get_status_display()} ({settlement.status})"
    )
    line(f"记录数 Records: {settlement.records}")
    line(f"标价合计 List price total: ¥{settlement.amount_total:,.2f}")
    line(
        f"抵扣合计（城市应付）Covered total (owed by the city): ¥{settlement.covered_total:,.2f}",
        11,
        24,
    )
    # The lines table: fixed column positions (the CJK font is proportional, so padding
    # with spaces would not align), amounts right-aligned, the header on every page.
    columns = [(left, "类型 Kind"), (left + 70, "记录 Record"), (left + 250, "算力券 Voucher")]
    amounts = [(left + 420, "标价 Amount"), (left + 495, "抵扣 Covered")]

    def header() -> None:
        nonlocal y
        pdf.setFont(font, 9)
        for x, title in columns:
            pdf.drawString(x, y, title)
        for x, title in amounts:
            pdf.drawRightString(x, y, title)
        pdf.line(left, y - 4, left + 495, y - 4)
        y -= 16

    header()
    for item in settlement.lines.order_by("id").iterator(chunk_size=2000):
        if y < 80:
            pdf.showPage()
            y = height - 60
            header()
        pdf.setFont(font, 8)
        pdf.drawString(columns[0][0], y, item.get_kind_display())
        pdf.drawString(columns[1][0], y, item.record_id[:40])
        pdf.drawString(columns[2][0], y, item.voucher_code)
        pdf.drawRightString(amounts[0][0], y, f"{item.amount:,.2f}")
        pdf.drawRightString(amounts[1][0], y, f"{item.covered_amount:,.2f}")
        y -= 12
    y -= 20
    line("签章 Signatures", 11, 22)
    line(
        "城市主管部门 For the city: ____________________   日期 Date: __________   （盖章 Seal）",
        10,
        30,
    )
    line(
        "数据中心 For the data center: ____________________   "
        "日期 Date: __________   （盖章 Seal）",
        10,
        30,
    )
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()
