"""Decision letters (issue #13 item 5): one per approval, rejection and not-recommended
decision, in the company's language, from the program's template, numbered per city
and year without gaps (also when two decisions race), immutable once issued, and
readable only by the company and the city's staff."""

from __future__ import annotations

import hashlib
import io
from decimal import Decimal

import pypdf
import pytest
from django.db import IntegrityError, InternalError, ProgrammingError, connection, transaction
from django.urls import reverse
from django.utils import timezone

from portal.errors import DomainError
from portal.models import AuditEvent
from tests.concurrency import outcome_codes, race
from tests.vouchers.conftest import complete_draft, program_values
from vouchers import services
from vouchers.models import Application, DecisionLetter, LetterKind


@pytest.fixture(autouse=True)
def _english():
    from django.utils import translation

    with translation.override("en"):
        yield


pytestmark = pytest.mark.usefixtures("eager_celery")


def pdf_text(letter: DecisionLetter) -> str:
    """The PDF's text with its line breaks undone (a wrapped Chinese line breaks between
    two characters, an English one at a space)."""
    pages = pypdf.PdfReader(io.BytesIO(bytes(letter.pdf))).pages
    text = "\n".join(p.extract_text() for p in pages)
    return text.replace("\n", "") + "\n" + " ".join(text.split())


def _recommended(program, company, user, world, amount="500000.00") -> Application:
    app = complete_draft(program, company, user, amount=amount)
    services.application_submit(application=app, actor=user)
    services.application_start_screening(application=app, actor=world.manager)
    services.application_pass_screening(application=app, actor=world.manager)
    return Application.objects.get(pk=app.pk)


def _year() -> int:
    return timezone.localtime().year


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        (
            "zh-hans",
            ["上海市", "算力券批准通知书", "核定算力券金额 ¥400,000.00", "申请金额 ¥500,000.00"],
        ),
        (
            "en",
            [
                "Shanghai",
                "notice of approval",
                "The award is ¥400,000.00",
                "requested: ¥500,000.00",
            ],
        ),
    ],
)
def test_approval_letter_in_the_companys_language(
    sh_program, company, startup_user, shanghai, language, expected
):
    startup_user.preferred_language = language
    startup_user.save(update_fields=["preferred_language"])
    app = _recommended(sh_program, company, startup_user, shanghai)
    voucher = services.application_approve(
        application=app, actor=shanghai.approver, amount=Decimal("400000"), reason="Scaled"
    )
    (letter,) = DecisionLetter.objects.filter(application=app)
    assert letter.kind == LetterKind.APPROVAL and letter.language == language
    assert letter.number == f"SH-{_year()}-000001"
    text = pdf_text(letter)
    for phrase in [*expected, company.legal_name, voucher.code, letter.number, "Scaled"]:
        assert phrase in text, (phrase, text)
    assert voucher.valid_until.isoformat() in text
    assert letter.sha256 == hashlib.sha256(bytes(letter.pdf)).hexdigest()


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_rejection_and_not_recommended_letters_give_the_reason(
    sh_program, company, startup_user, shanghai, language
):
    startup_user.preferred_language = language
    startup_user.save(update_fields=["preferred_language"])
    first = _recommended(sh_program, company, startup_user, shanghai)
    services.application_reject(application=first, actor=shanghai.approver, reason="预算不足 short")
    second = complete_draft(sh_program, company, startup_user)
    services.application_submit(application=second, actor=startup_user)
    services.application_start_screening(application=second, actor=shanghai.manager)
    services.application_fail_screening(
        application=second, actor=shanghai.manager, reason="证照过期 expired"
    )
    rejection = DecisionLetter.objects.get(application=first)
    refusal = DecisionLetter.objects.get(application=second)
    assert (rejection.kind, refusal.kind) == (LetterKind.REJECTION, LetterKind.NOT_RECOMMENDED)
    words = {"zh-hans": ("不予批准", "未获推荐"), "en": ("is not approved", "is not recommended")}
    assert words[language][0] in pdf_text(rejection)
    assert "预算不足 short" in pdf_text(rejection)
    assert words[language][1] in pdf_text(refusal)
    assert "证照过期 expired" in pdf_text(refusal)
    assert [rejection.number, refusal.number] == [
        f"SH-{_year()}-000001",
        f"SH-{_year()}-000002",
    ]


def test_an_issued_letter_never_changes(sh_program, company, startup_user, shanghai):
    app = _recommended(sh_program, company, startup_user, shanghai)
    services.application_reject(application=app, actor=shanghai.approver, reason="Late")
    letter = DecisionLetter.objects.get(application=app)
    before = (bytes(letter.pdf), letter.sha256, letter.title, letter.body)
    services.letter_template_save(
        program=sh_program,
        kind=LetterKind.REJECTION,
        actor=shanghai.manager,
        values={
            "title_zh": "新标题 {program}",
            "body_zh": "新正文 {company} {reason}",
            "title_en": "New title {program}",
            "body_en": "New wording for {company}: {reason}",
        },
    )
    letter.refresh_from_db()
    assert (bytes(letter.pdf), letter.sha256, letter.title, letter.body) == before
    # The next letter uses the new wording.
    other = _recommended(sh_program, company, startup_user, shanghai)
    services.application_reject(application=other, actor=shanghai.approver, reason="Late")
    assert "新正文" in DecisionLetter.objects.get(application=other).body
    # And the database itself refuses to change or delete an issued letter.
    for statement in (
        "UPDATE vouchers_decisionletter SET title = 'x' WHERE id = %s",
        "DELETE FROM vouchers_decisionletter WHERE id = %s",
    ):
        with (
            pytest.raises((InternalError, IntegrityError, ProgrammingError)),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement, [letter.pk])


def test_template_placeholders_are_validated(sh_program, shanghai):
    values = {
        "title_zh": "{program}通知",
        "body_zh": "{company}：{amout}",
        "title_en": "{program} {company.legal_name}",
        "body_en": "Dear {company} {",
    }
    with pytest.raises(DomainError) as caught:
        services.letter_template_save(
            program=sh_program, kind=LetterKind.APPROVAL, actor=shanghai.manager, values=values
        )
    fields = caught.value.fields
    assert set(fields) == {"body_zh", "title_en", "body_en"}
    assert "Unknown placeholder {amout}" in fields["body_zh"][0]
    assert "Unmatched brace" in fields["body_en"][0]
    with pytest.raises(DomainError) as caught:
        services.letter_template_save(
            program=sh_program,
            kind=LetterKind.APPROVAL,
            actor=shanghai.reviewer,
            values={**values, "body_zh": "x", "title_en": "x", "body_en": "x"},
        )
    assert caught.value.code == "forbidden"


def test_template_page_shows_the_error_next_to_the_field(client, sh_program, shanghai, settings):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    client.force_login(shanghai.manager)
    url = reverse("vouchers:staff_letter_templates", args=["shanghai", sh_program.slug])
    page = client.get(url)
    assert page.status_code == 200 and "{voucher_code}" in page.content.decode()
    response = client.post(
        url,
        {
            "kind": "rejection",
            "rejection-title_zh": "标题",
            "rejection-body_zh": "{company} {nonsense}",
            "rejection-title_en": "Title",
            "rejection-body_en": "Body {reason}",
        },
    )
    assert response.status_code == 200
    # Beside its field, announced (portal/_form_fields.html: id ties it to the input).
    assert 'role="alert">Unknown placeholder {nonsense}' in response.content.decode()
    response = client.post(
        url,
        {
            "kind": "rejection",
            "rejection-title_zh": "标题",
            "rejection-body_zh": "{company} {reason}",
            "rejection-title_en": "Title",
            "rejection-body_en": "Body {reason}",
        },
    )
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="program.letter_template").count() == 1


def test_letters_are_shown_and_downloaded_by_company_and_staff_only(
    client, sh_program, company, startup_user, shanghai, shenzhen, outsider
):
    app = _recommended(sh_program, company, startup_user, shanghai)
    services.application_reject(application=app, actor=shanghai.approver, reason="Late")
    letter = DecisionLetter.objects.get(application=app)
    mine = reverse("vouchers:my_letter", args=[app.pk, letter.pk])
    staff = reverse("vouchers:staff_letter", args=["shanghai", app.pk, letter.pk])
    client.force_login(startup_user)
    assert mine in client.get(reverse("vouchers:application", args=[app.pk])).content.decode()
    response = client.get(mine)
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert b"".join(response) == bytes(letter.pdf)
    client.force_login(shanghai.auditor)
    page = client.get(reverse("vouchers:staff_application", args=["shanghai", app.pk]))
    assert staff in page.content.decode()
    assert client.get(staff).status_code == 200
    assert AuditEvent.objects.filter(action="letter.download").count() == 1
    # Another city's staff, another user: 404, on the letter and on the templates page.
    for user in (shenzhen.manager, shenzhen.approver, outsider):
        client.force_login(user)
        assert client.get(staff).status_code == 404
        assert client.get(mine).status_code == 404
    client.force_login(shenzhen.manager)
    url = reverse("vouchers:staff_letter_templates", args=["shanghai", sh_program.slug])
    assert client.get(url).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_document_numbers_are_gap_free_per_city_under_concurrent_decisions(
    shanghai, shenzhen, startup_user
):
    from tests.vouchers.conftest import make_company

    company = make_company(startup_user)
    program = services.program_save(
        city=shanghai.city, actor=shanghai.manager, values=program_values(slug="race")
    )
    first = _recommended(program, company, startup_user, shanghai)
    second = _recommended(program, company, startup_user, shanghai)
    outcomes = race(
        lambda: services.application_reject(
            application=Application.objects.get(pk=first.pk), actor=shanghai.approver, reason="a"
        ),
        lambda: services.application_reject(
            application=Application.objects.get(pk=second.pk), actor=shanghai.approver, reason="b"
        ),
    )
    assert outcome_codes(outcomes) == ["done", "done"]
    year = _year()
    numbers = sorted(
        DecisionLetter.objects.filter(city=shanghai.city).values_list("number", flat=True)
    )
    assert numbers == [f"SH-{year}-000001", f"SH-{year}-000002"]
    # A decision that fails after taking its number gives it back: no gap.
    third = _recommended(program, company, startup_user, shanghai)
    with pytest.raises(DomainError):
        services.application_approve(
            application=third, actor=shanghai.approver, amount=Decimal("99999999")
        )
    services.application_reject(application=third, actor=shanghai.approver, reason="c")
    assert DecisionLetter.objects.get(application=third).number == f"SH-{year}-000003"
    # Another city counts on its own.
    sz_program = services.program_save(
        city=shenzhen.city, actor=shenzhen.manager, values=program_values(slug="race")
    )
    fourth = _recommended(sz_program, company, startup_user, shenzhen)
    services.application_reject(application=fourth, actor=shenzhen.approver, reason="d")
    assert DecisionLetter.objects.get(application=fourth).number == f"SZ-{year}-000001"
