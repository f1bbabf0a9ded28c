"""The application form (issue #13 item 9): the amount checked when step 3 is saved,
documents removed or replaced before submission and shown with their type, size and
upload time, the final step showing what is submitted, and a sign-up from a program
page that comes back to it after the e-mail verification."""

from __future__ import annotations

import re
from decimal import Decimal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from portal.errors import DomainError
from portal.models import AuditEvent
from tests.vouchers.conftest import PDF, PNG, complete_draft
from vouchers import services
from vouchers.models import Application, Document


@pytest.fixture
def draft(sh_program, company, startup_user):
    return complete_draft(sh_program, company, startup_user)


def _amount_step(app, amount: str) -> dict:
    return {
        "requested_amount": amount,
        "declares_no_related_party": "on",
        "declares_no_other_subsidy": "on",
        "declares_true_information": "on",
        "go": "stay",
    }


@pytest.mark.parametrize(
    ("amount", "saved"),
    [("99999.99", False), ("100000.00", True), ("2000000.00", True), ("2000000.01", False)],
)
def test_the_amount_step_checks_the_programs_minimum_and_maximum_when_saved(
    client, draft, startup_user, amount, saved
):
    # sh_program awards ¥100,000.00 to ¥2,000,000.00 (tests/vouchers/conftest.py).
    client.force_login(startup_user)
    url = f"/company/applications/{draft.pk}/?step=amount"
    response = client.post(url, _amount_step(draft, amount))
    stored = Application.objects.get(pk=draft.pk).requested_amount
    if saved:
        assert response.status_code == 302
        assert stored == Decimal(amount)
    else:
        assert response.status_code == 200
        errors = response.context["form"].errors["requested_amount"]
        assert "¥100,000.00" in errors[0] and "¥2,000,000.00" in errors[0]
        assert stored == Decimal("500000.00")


def test_the_service_refuses_an_amount_outside_the_range(draft, startup_user):
    with pytest.raises(DomainError) as err:
        services.application_update(
            application=draft, actor=startup_user, values={"requested_amount": Decimal("1")}
        )
    assert err.value.code == "invalid"
    assert "requested_amount" in err.value.fields


def test_a_document_is_removed_before_submission_and_its_file_goes(
    client, draft, startup_user, django_capture_on_commit_callbacks
):
    document = draft.documents.get()
    storage, name = document.file.storage, document.file.name
    client.force_login(startup_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/company/applications/{draft.pk}/documents/{document.pk}/remove/")
    assert response.status_code == 302
    assert response["Location"].endswith("?step=documents")
    assert not draft.documents.exists()
    assert not storage.exists(name)
    event = AuditEvent.objects.get(action="document.remove")
    assert event.data["name"] == "licence.pdf"


def test_a_document_is_replaced_by_a_new_file_of_the_same_type(
    client, draft, startup_user, django_capture_on_commit_callbacks
):
    old = draft.documents.get()
    client.force_login(startup_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/company/applications/{draft.pk}/documents/{old.pk}/replace/",
            {"file": SimpleUploadedFile("licence-2026.png", PNG, content_type="image/png")},
        )
    assert response.status_code == 302
    new = draft.documents.get()
    assert new.pk != old.pk
    assert (new.doc_type, new.original_name, new.content_type) == (
        "business_licence",
        "licence-2026.png",
        "image/png",
    )
    assert not old.file.storage.exists(old.file.name)
    assert AuditEvent.objects.get(action="document.replace").data["replaced"] == old.pk


def test_a_replacement_that_is_not_a_pdf_png_or_jpeg_keeps_the_old_file(
    client, draft, startup_user
):
    old = draft.documents.get()
    client.force_login(startup_user)
    client.post(
        f"/company/applications/{draft.pk}/documents/{old.pk}/replace/",
        {"file": SimpleUploadedFile("x.gif", b"GIF89a" + b"\x00" * 20)},
    )
    assert list(draft.documents.all()) == [old]
    assert old.file.storage.exists(old.file.name)


def test_documents_cannot_be_removed_or_replaced_after_submission(draft, startup_user):
    services.application_submit(application=draft, actor=startup_user)
    document = draft.documents.get()
    with pytest.raises(DomainError) as err:
        services.document_remove(application=draft, actor=startup_user, document=document)
    assert err.value.code == "conflict"
    with pytest.raises(DomainError) as err:
        services.document_replace(
            application=draft,
            actor=startup_user,
            document=document,
            upload=SimpleUploadedFile("b.pdf", PDF),
        )
    assert err.value.code == "conflict"
    assert list(draft.documents.all()) == [document]


def test_another_companys_member_gets_404_and_changes_nothing(client, draft, outsider, shanghai):
    document = draft.documents.get()
    for user in (outsider, shanghai.manager):
        client.force_login(user)
        base = f"/company/applications/{draft.pk}/documents/{document.pk}"
        assert client.post(f"{base}/remove/").status_code == 404
        upload = SimpleUploadedFile("evil.pdf", PDF)
        assert client.post(f"{base}/replace/", {"file": upload}).status_code == 404
        with pytest.raises(DomainError) as err:
            services.document_remove(application=draft, actor=user, document=document)
        assert err.value.code == "not_found"
    assert list(Document.objects.all()) == [document]


def test_the_documents_step_shows_type_size_and_upload_time(client, draft, startup_user):
    client.force_login(startup_user)
    page = client.get(f"/company/applications/{draft.pk}/?step=documents").content.decode()
    document = draft.documents.get()
    local = document.uploaded_at.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M")
    assert "licence.pdf" in page
    assert "PDF" in page
    assert f"{len(PDF)}" in page  # the size, in bytes
    assert f"{local} (Asia/Shanghai)" in page
    assert f"/documents/{document.pk}/remove/" in page
    assert f"/documents/{document.pk}/replace/" in page


def test_the_final_step_shows_the_documents_and_declarations_submitted(client, draft, startup_user):
    Application.objects.filter(pk=draft.pk).update(declares_no_other_subsidy=False)
    client.force_login(startup_user)
    page = client.get(
        f"/company/applications/{draft.pk}/?step=review", HTTP_ACCEPT_LANGUAGE="en"
    ).content.decode()
    assert "licence.pdf" in page
    assert "/remove/" not in page  # shown, not changed, on the final step
    declarations = page[page.index('class="declarations"') :]
    assert declarations.count("✓") == 2
    assert declarations.count("✗") == 1


@pytest.mark.parametrize("browser", ["same", "another"])
def test_signing_up_from_a_program_page_returns_there_after_verification(
    client, sh_program, browser
):
    program_page = f"/shanghai/programs/{sh_program.slug}/"
    password = "a-Long-pass-2026!"
    response = client.post(
        f"/accounts/signup/?next={program_page}",
        {
            "email": "new@startup.test",
            "password1": password,
            "password2": password,
            "display_name": "新用户",
            "preferred_language": "zh-hans",
            "next": program_page,
        },
    )
    assert response.status_code == 302
    link = re.search(r"https?://\S+/accounts/confirm-email/\S+", mail.outbox[-1].body).group(0)
    confirmer = client if browser == "same" else Client()
    path = urlsplit(link).path + (f"?{urlsplit(link).query}" if urlsplit(link).query else "")
    page = confirmer.get(path)
    assert page.status_code == 200
    data = {"next": page.context["redirect_field_value"]} if page.context else {}
    response = confirmer.post(path, data)
    assert response.status_code == 302
    target = response["Location"]
    if target != program_page:
        # Confirmed, not yet signed in: the sign-in page, which leads back to the program.
        assert target == f"/accounts/login/?next={program_page.replace('/', '%2F')}"
        response = confirmer.post(
            target, {"login": "new@startup.test", "password": password, "next": program_page}
        )
        assert response["Location"] == program_page
    assert confirmer.get(program_page).context["user"].email == "new@startup.test"


@pytest.mark.parametrize("hours", ["sNaN", "NaN", "Infinity", "-Infinity"])
def test_a_plan_row_of_non_finite_hours_is_a_field_error(client, draft, startup_user, hours):
    """The form fuzzer's find: Django's DecimalField parsed "sNaN" and the formset's
    has_changed() then compared it, which raises (a 500)."""
    client.force_login(startup_user)
    response = client.post(
        f"/company/applications/{draft.pk}/?step=plan",
        {
            "plan-TOTAL_FORMS": "1",
            "plan-INITIAL_FORMS": "0",
            "plan-0-accelerator": "Ascend 910B",
            "plan-0-hours": hours,
            "go": "stay",
        },
    )
    assert response.status_code == 200
    assert "hours" in response.context["formset"].forms[0].errors
    assert list(draft.compute_plan.values_list("hours", flat=True)) == [Decimal("20000.0")]
