"""Decision letters (通知书): the placeholders a program's template may use, the built-in
wording, the document number, the PDF, and issuing a letter inside the decision's
transaction.

A letter is written in the company's language (that of the member who created the
application), numbered `<city code>-<year>-<000123>` per city and calendar year (the
city's), and stored with its rendered text, PDF bytes and their SHA-256. It is never
rendered again: a template changed later leaves issued letters as they were.
"""

from __future__ import annotations

import hashlib
import io
import string
from datetime import datetime
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape

from django.db import connection
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from portal.citytime import city_datetime, city_zone
from portal.errors import DomainError
from portal.models import City
from vouchers.models import (
    Application,
    DecisionLetter,
    LetterKind,
    LetterTemplate,
    OutcomeReport,
    Voucher,
)
from vouchers.notes import note_text

# What a template may name, each with what it stands for (shown on the editor page).
PLACEHOLDERS: dict[str, Any] = {
    "company": gettext_lazy("Legal name of the company"),
    "program": gettext_lazy("Name of the program"),
    "city": gettext_lazy("Name of the city"),
    "application": gettext_lazy("Application number"),
    "title": gettext_lazy("Project title"),
    "amount": gettext_lazy("Amount awarded"),
    "requested": gettext_lazy("Amount requested"),
    "voucher_code": gettext_lazy("Voucher code"),
    "valid_from": gettext_lazy("First day of validity"),
    "valid_until": gettext_lazy("Last day of validity"),
    "accept_by": gettext_lazy("End of the acceptance window"),
    "reason": gettext_lazy("Reason for the decision or the award"),
    "date": gettext_lazy("Date of the letter"),
    "number": gettext_lazy("Document number"),
    "stage": gettext_lazy("Stage of the outcome report (acceptance letters)"),
}

TEMPLATE_FIELDS = ("title_zh", "body_zh", "title_en", "body_en")

# The built-in wording, data in two languages as a program's own template would be.
DEFAULT_TEMPLATES: dict[str, dict[str, str]] = {
    LetterKind.APPROVAL: {
        "title_zh": "{program}批准通知书",
        "body_zh": (
            "{company}：\n\n你单位向{program}提交的申报项目“{title}”（申请 {application}）"
            "经审核，予以批准，核定算力券金额 {amount}（申请金额 {requested}）。{reason}\n\n"
            "算力券编号：{voucher_code}\n有效期：{valid_from} 至 {valid_until}\n\n"
            "请在有效期内于已登记的数据中心使用算力券。\n\n{city}\n{date}"
        ),
        "title_en": "{program}: notice of approval",
        "body_en": (
            "To {company}:\n\nYour application {application} to {program}, “{title}”, is "
            "approved. The award is {amount} (requested: {requested}). {reason}\n\n"
            "Voucher code: {voucher_code}\nValid from {valid_from} to {valid_until}\n\n"
            "Use the voucher at a registered data center within its validity.\n\n{city}\n{date}"
        ),
    },
    LetterKind.REJECTION: {
        "title_zh": "{program}不予批准通知书",
        "body_zh": (
            "{company}：\n\n你单位向{program}提交的申报项目“{title}”（申请 {application}）"
            "经审核，不予批准。\n\n理由：{reason}\n\n{city}\n{date}"
        ),
        "title_en": "{program}: notice of rejection",
        "body_en": (
            "To {company}:\n\nYour application {application} to {program}, “{title}”, is not "
            "approved.\n\nReason: {reason}\n\n{city}\n{date}"
        ),
    },
    LetterKind.OUTCOME_ACCEPTED: {
        "title_zh": "{program}成果验收通知书",
        "body_zh": (
            "{company}：\n\n你单位使用算力券 {voucher_code}（有效期 {valid_from} 至 "
            "{valid_until}）提交的{stage}经审核，予以验收通过。{reason}\n\n{city}\n{date}"
        ),
        "title_en": "{program}: notice of acceptance of the outcome report",
        "body_en": (
            "To {company}:\n\nThe outcome report ({stage}) on your voucher {voucher_code} "
            "(valid from {valid_from} to {valid_until}) is accepted. {reason}\n\n{city}\n{date}"
        ),
    },
    LetterKind.NOT_RECOMMENDED: {
        "title_zh": "{program}未获推荐通知书",
        "body_zh": (
            "{company}：\n\n你单位向{program}提交的申报项目“{title}”（申请 {application}）"
            "经审查、评审，未获推荐。\n\n理由：{reason}\n\n{city}\n{date}"
        ),
        "title_en": "{program}: notice of non-recommendation",
        "body_en": (
            "To {company}:\n\nYour application {application} to {program}, “{title}”, is not "
            "recommended.\n\nReason: {reason}\n\n{city}\n{date}"
        ),
    },
}


def placeholder_problems(text: str) -> list[str]:
    """What is wrong with a template's placeholders: an unknown name, an attribute or
    index ({company.x}), a format or conversion, or an unmatched brace. Empty when the
    text renders with `str.format_map` over `PLACEHOLDERS`."""
    problems: list[str] = []
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError:
        return [_("Unmatched brace: write {{ or }} for a brace itself.")]
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            problems.append(
                _("Unknown placeholder {%(name)s}. Known: %(known)s.")
                % {"name": name, "known": ", ".join(f"{{{k}}}" for k in PLACEHOLDERS)}
            )
        elif spec or conversion:
            problems.append(
                _("Write the placeholder {%(name)s} without a format.") % {"name": name}
            )
    return problems


def template_problems(values: dict[str, str]) -> dict[str, list[str]]:
    """Every field's problems at once: empty fields and bad placeholders."""
    errors: dict[str, list[str]] = {}
    for field in TEMPLATE_FIELDS:
        text = (values.get(field) or "").strip()
        if not text:
            errors[field] = [_("This field is required.")]
            continue
        found = placeholder_problems(text)
        if found:
            errors[field] = found
    return errors


def template_get(program_id: int, kind: str) -> dict[str, str]:
    """The program's wording of a kind of letter, or the built-in one."""
    row = (
        LetterTemplate.objects.filter(program_id=program_id, kind=kind)
        .values(*TEMPLATE_FIELDS)
        .first()
    )
    return row or dict(DEFAULT_TEMPLATES[kind])


def letter_number_take(city: City, *, now: datetime | None = None) -> tuple[int, int]:
    """The city's next document number of this year (the city's calendar year), taken
    in the caller's transaction: the counter row stays locked until it commits, so two
    decisions get consecutive numbers, and a decision rolled back gives its number
    back. Lock order: after the application and the program, before the audit lock."""
    assert connection.in_atomic_block, "letter numbers are taken inside a transaction"
    year = timezone.localtime(now or timezone.now(), city_zone(city)).year
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO vouchers_letternumber (city_id, year, last) VALUES (%s, %s, 0) "
            "ON CONFLICT (city_id, year) DO NOTHING",
            [city.pk, year],
        )
        cursor.execute(
            "UPDATE vouchers_letternumber SET last = last + 1 "
            "WHERE city_id = %s AND year = %s RETURNING last",
            [city.pk, year],
        )
        (sequence,) = cursor.fetchone()
    return year, sequence


def _yuan(amount: Decimal | None) -> str:
    return f"¥{amount:,.2f}" if amount is not None else "—"


def _values(
    application: Application,
    kind: str,
    number: str,
    now: datetime,
    report: OutcomeReport | None = None,
) -> dict[str, str]:
    """The placeholders' values, in the active language."""
    city = application.city
    voucher = Voucher.objects.filter(application=application).first()
    if report is not None:
        reason = report.review_comment
    elif kind == LetterKind.APPROVAL:
        reason = application.award_reason
    else:
        reason = note_text(application.decision_reason, application)
    pending = _("issued when the award is accepted")
    return {
        "company": application.company.legal_name,
        "program": application.program.name,
        "city": city.name,
        "application": f"#{application.pk}",
        "title": application.title,
        "amount": _yuan(application.awarded_amount),
        "requested": _yuan(application.requested_amount),
        "voucher_code": voucher.code if voucher else pending,
        # Calendar dates of the city, as a letter writes them.
        "valid_from": voucher.valid_from.isoformat() if voucher else pending,
        "valid_until": voucher.valid_until.isoformat() if voucher else pending,
        "accept_by": (
            city_datetime(application.award_expires_at, city)
            if application.award_expires_at
            else "—"
        ),
        "reason": reason or "",
        "date": timezone.localtime(now, city_zone(city)).date().isoformat(),
        "number": number,
        "stage": str(report.get_stage_display()) if report is not None else "—",
    }


def _font() -> str:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont

    # reportlab's built-in CID font renders Chinese without shipping a font file (as
    # compute's settlement statement).
    font = "STSong-Light"
    if font not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(font))
    return font


def letter_pdf(*, city_name: str, number: str, title: str, body: str, language: str) -> bytes:
    """The letter as an A4 PDF: the city's name, the document number, the title and the
    body (paragraphs as written, wrapped; Chinese wraps between any two characters)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer

    font = _font()
    wrap = "CJK" if language.startswith("zh") else None
    base = ParagraphStyle("body", fontName=font, fontSize=11, leading=18, wordWrap=wrap)
    head = ParagraphStyle("head", parent=base, fontSize=16, leading=24, alignment=1)
    small = ParagraphStyle("small", parent=base, fontSize=10, alignment=2)
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=25 * mm,
        rightMargin=25 * mm,
        topMargin=25 * mm,
        bottomMargin=25 * mm,
        title=f"{number} {title}",
    )
    with translation.override(language):
        label = _("Document number")
    story = [
        Paragraph(escape(city_name), head),
        Paragraph(escape(title), head),
        Paragraph(escape(f"{label}: {number}"), small),
        Spacer(1, 8 * mm),
    ]
    for paragraph in body.split("\n"):
        if paragraph.strip():
            story.append(Paragraph(escape(paragraph), base))
        else:
            story.append(Spacer(1, 4 * mm))
    doc.build(story)
    return buffer.getvalue()


def letter_issue(
    *,
    application: Application,
    kind: str,
    number: tuple[int, int] | None = None,
    report: OutcomeReport | None = None,
) -> DecisionLetter:
    """Render and store the letter of a decision, in the caller's transaction (the
    decision's); an outcome report's acceptance letter names the `report` (its stage and
    the program manager's comment). `number` is one the caller took earlier with
    `letter_number_take` (the approval takes it before the voucher's audit event);
    otherwise it is taken here, so call this before the transaction's audit event."""
    if kind not in LetterKind.values:
        raise DomainError(_("Not found."), code="not_found")
    city = application.city
    now = timezone.now()
    year, sequence = number or letter_number_take(city, now=now)
    document_number = f"{city.code}-{year}-{sequence:06d}"
    language = application.created_by.preferred_language
    wording = template_get(application.program_id, kind)
    with translation.override(language):
        suffix = "zh" if language.startswith("zh") else "en"
        values = _values(application, kind, document_number, now, report)
        title = wording[f"title_{suffix}"].format_map(values)
        body = wording[f"body_{suffix}"].format_map(values)
        city_name = city.name
    pdf = letter_pdf(
        city_name=city_name, number=document_number, title=title, body=body, language=language
    )
    return DecisionLetter.objects.create(
        application=application,
        city=city,
        kind=kind,
        number=document_number,
        year=year,
        sequence=sequence,
        language=language,
        title=title[:300],
        body=body,
        pdf=pdf,
        sha256=hashlib.sha256(pdf).hexdigest(),
    )
