"""Settlement statements as files: CSV (UTF-8 with a BOM, so spreadsheet programs open
Chinese correctly) and PDF (reportlab; its built-in CID font STSong-Light renders
Chinese without shipping a font file)."""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Callable
from decimal import Decimal

from django.utils.translation import gettext as _

from compute.models import Settlement, SettlementStatus
from portal.dbrouter import use_replica
from portal.exports import cells

CENT = Decimal("0.01")


def _from_replica_once_issued(build: Callable[[Settlement], bytes]) -> Callable:
    """Read an issued statement's lines from the replica, if there is one: from issue on
    a statement never changes, so a lagging copy gives the same file. A draft may have
    just been rebuilt on the primary, so it is read there."""

    @functools.wraps(build)
    def read(settlement: Settlement) -> bytes:
        with use_replica(settlement.status != SettlementStatus.DRAFT):
            return build(settlement)

    return read


def _money(amount: Decimal) -> Decimal:
    """Two places, kept a number: a negative adjustment is not text to neutralise."""
    return amount.quantize(CENT)


@_from_replica_once_issued
def statement_csv(settlement: Settlement) -> bytes:
    """The statement as CSV in the active language (the reader's): translated headers,
    the city and the data center by their names in that language, the status and each
    line's kind as labels. Text cells are neutralised (`portal.exports.cells`): record
    ids come from the data center and must not run as formulas in a spreadsheet."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(cells([_("City"), _("Data center"), _("Period"), _("Status")]))
    writer.writerow(
        cells(
            [
                settlement.city.name,
                settlement.data_center.name,
                f"{settlement.period:%Y-%m}",
                settlement.get_status_display(),
            ]
        )
    )
    writer.writerow([])
    writer.writerow(cells([_("Kind"), _("Record"), _("Voucher"), _("Amount"), _("Covered")]))
    for line in settlement.lines.order_by("id"):
        writer.writerow(
            cells(
                [
                    line.get_kind_display(),
                    line.record_id,
                    line.voucher_code,
                    _money(line.amount),
                    _money(line.covered_amount),
                ]
            )
        )
    writer.writerow(
        cells(
            [
                _("Total"),
                settlement.records,
                "",
                _money(settlement.amount_total),
                _money(settlement.covered_total),
            ]
        )
    )
    return ("\ufeff" + out.getvalue()).encode("utf-8")


# The lines table of the PDF: x of each column's left edge (amounts: right edge), in
# points on A4 with a 50 pt margin. Record ids wrap inside their column, never cut.
_KIND_X, _RECORD_X, _VOUCHER_X, _AMOUNT_X, _COVERED_X = 50, 110, 300, 470, 545
_RECORD_WIDTH = _VOUCHER_X - _RECORD_X - 8
_TOP, _BOTTOM = 60, 70


def _wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """`text` cut into pieces no wider than `width` (ids have no spaces to break at)."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    pieces, piece = [], ""
    for char in text:
        if piece and stringWidth(piece + char, font, size) > width:
            pieces.append(piece)
            piece = ""
        piece += char
    return [*pieces, piece] if piece or not pieces else pieces


def _numbered_canvas(font: str):
    """A reportlab canvas that writes "page x of y" on every page once it knows y: each
    finished page is kept until `save`, then numbered and written."""
    from reportlab.pdfgen import canvas

    class NumberedCanvas(canvas.Canvas):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict] = []

        def showPage(self) -> None:  # reportlab names it so
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for number, page in enumerate(self._pages, start=1):
                self.__dict__.update(page)
                self.setFont(font, 8)
                width = self._pagesize[0]
                self.drawRightString(
                    width - 50,
                    30,
                    _("Page %(page)s of %(pages)s") % {"page": number, "pages": total},
                )
                super().showPage()
            super().save()

    return NumberedCanvas


@_from_replica_once_issued
def statement_pdf(settlement: Settlement) -> bytes:
    """The statement in the active language (the reader's), with the city and the data
    center in both their names: the lines with full record ids (wrapped), the header
    on every page, "page x of y", the totals and the signature block on the last page."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont

    font = "STSong-Light"
    if font not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(font))
    buffer = io.BytesIO()
    pdf = _numbered_canvas(font)(buffer, pagesize=A4)
    pdf.setTitle(
        f"{_('Settlement statement')} {settlement.city.slug} {settlement.data_center.slug} "
        f"{settlement.period:%Y-%m}"
    )
    _width, height = A4
    y = height - _TOP

    def new_page() -> None:
        nonlocal y
        pdf.showPage()
        y = height - _TOP

    def line(text: str, size: int = 10, gap: int = 15) -> None:
        nonlocal y
        if y < _BOTTOM + gap:
            new_page()
        pdf.setFont(font, size)
        pdf.drawString(_KIND_X, y, text)
        y -= gap

    city, dc = settlement.city, settlement.data_center
    line(_("Computing-voucher settlement statement"), 15, 24)
    line(f"{_('City')}: {city.name_zh} / {city.name_en}")
    line(f"{_('Data center')}: {dc.name_zh} / {dc.name_en}")
    line(
        f"{_('Period')}: {settlement.period:%Y-%m}    "
        f"{_('Status')}: {settlement.get_status_display()}",
        10,
        24,
    )

    def header() -> None:
        nonlocal y
        pdf.setFont(font, 9)
        pdf.drawString(_KIND_X, y, str(_("Kind")))
        pdf.drawString(_RECORD_X, y, str(_("Record")))
        pdf.drawString(_VOUCHER_X, y, str(_("Voucher")))
        pdf.drawRightString(_AMOUNT_X, y, str(_("Amount")))
        pdf.drawRightString(_COVERED_X, y, str(_("Covered")))
        pdf.line(_KIND_X, y - 4, _COVERED_X, y - 4)
        y -= 16

    header()
    for item in settlement.lines.order_by("id").iterator(chunk_size=2000):
        pieces = _wrap(item.record_id, font, 8, _RECORD_WIDTH)
        if y - 11 * (len(pieces) - 1) < _BOTTOM:
            new_page()
            header()
        pdf.setFont(font, 8)
        pdf.drawString(_KIND_X, y, item.get_kind_display())
        # The id's pieces one under the other, drawn together so that text extraction
        # reads them in order.
        for n, piece in enumerate(pieces):
            pdf.drawString(_RECORD_X, y - 11 * n, piece)
        pdf.drawString(_VOUCHER_X, y, item.voucher_code)
        pdf.drawRightString(_AMOUNT_X, y, f"{item.amount:,.2f}")
        pdf.drawRightString(_COVERED_X, y, f"{item.covered_amount:,.2f}")
        y -= 11 * len(pieces) + 1
    # The totals and the signatures stay together on the last page.
    if y < _BOTTOM + 170:
        new_page()
    y -= 10
    pdf.line(_KIND_X, y + 8, _COVERED_X, y + 8)
    line(f"{_('Records')}: {settlement.records}")
    line(f"{_('List price total')}: ¥{settlement.amount_total:,.2f}")
    line(f"{_('Covered total (owed by the city)')}: ¥{settlement.covered_total:,.2f}", 11, 30)
    line(str(_("Signatures")), 11, 22)
    seal = f"{_('Date')}: __________   ({_('Seal')})"
    line(f"{_('For the city')}: ____________________   {seal}", 10, 30)
    line(f"{_('For the data center')}: ____________________   {seal}", 10, 30)
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()
