"""The workflow through its web pages, and tenancy on every one of them."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from portal.models import AuditEvent
from tests.vouchers.conftest import PDF, complete_draft
from vouchers import services
from vouchers.models import Application

pytestmark = pytest.mark.usefixtures("eager_celery")


def test_a_startup_applies_through_the_web_form(client, sh_program, company, startup_user):
    client.force_login(startup_user)
    response = client.post(f"/shanghai/programs/{sh_program.slug}/", {"company": company.pk})
    app = Application.objects.get()
    assert response.status_code == 302
    url = f"/company/applications/{app.pk}/"
    client.post(
        f"{url}?step=project",
        {"title": "大模型", "summary": "训练", "model_plans": "预训练", "go": "next"},
    )
    client.post(
        f"{url}?step=plan",
        {
            "plan-TOTAL_FORMS": "2",
            "plan-INITIAL_FORMS": "0",
            "plan-0-accelerator": "Ascend 910B",
            "plan-0-domestic": "on",
            "plan-0-hours": "1000",
            "plan-1-accelerator": "",
            "plan-1-hours": "",
            "go": "next",
        },
    )
    client.post(
        f"{url}?step=amount",
        {
            "requested_amount": "300000",
            "declares_no_related_party": "on",
            "declares_no_other_subsidy": "on",
            "declares_true_information": "on",
            "go": "next",
        },
    )
    bad = client.post(
        f"{url}?step=documents",
        {"doc_type": "business_licence", "file": SimpleUploadedFile("x.pdf", b"not a pdf")},
    )
    assert bad.status_code == 200
    assert not app.documents.exists()
    client.post(
        f"{url}?step=documents",
        {"doc_type": "business_licence", "file": SimpleUploadedFile("licence.pdf", PDF)},
    )
    page = client.get(f"{url}?step=review").content.decode()
    assert "大模型" in page
    client.post(f"{url}submit/")
    app.refresh_from_db()
    assert app.state == "submitted"
    assert app.compute_plan.get().hours == Decimal("1000")


def test_staff_screen_and_approve_on_their_pages(
    client, sh_program, company, startup_user, shanghai
):
    app = complete_draft(sh_program, company, startup_user)
    services.application_submit(application=app, actor=startup_user)
    base = f"/shanghai/staff/applications/{app.pk}/"
    client.force_login(shanghai.reviewer)
    page = client.get(base).content.decode()
    assert "/do/start_screening/" in page
    assert "/do/approve/" not in page  # the table allows a reviewer no approval
    client.post(f"{base}do/start_screening/")
    client.post(f"{base}do/pass_screening/")
    client.force_login(shanghai.approver)
    assert "/do/approve/" in client.get(base).content.decode()
    client.post(f"{base}do/approve/", {"amount": "250000", "reason": "Half the plan"})
    app.refresh_from_db()
    assert app.state == "approved"
    client.force_login(startup_user)
    assert app.voucher.code in client.get("/company/").content.decode()


def test_staff_document_downloads_are_audited(client, sh_program, company, startup_user, shanghai):
    app = complete_draft(sh_program, company, startup_user)
    services.application_submit(application=app, actor=startup_user)
    document = app.documents.get()
    client.force_login(shanghai.auditor)
    response = client.get(f"/shanghai/staff/applications/{app.pk}/documents/{document.pk}/")
    assert response.status_code == 200
    assert b"".join(response.streaming_content).startswith(b"%PDF-")
    assert AuditEvent.objects.filter(action="document.download", actor=shanghai.auditor).exists()


def test_other_citys_staff_and_other_companies_get_404_everywhere(
    client, sh_program, company, startup_user, shenzhen, outsider
):
    app = complete_draft(sh_program, company, startup_user)
    services.application_submit(application=app, actor=startup_user)
    document = app.documents.get()
    client.force_login(shenzhen.manager)
    for path in (
        f"/shanghai/staff/applications/{app.pk}/",
        f"/shanghai/staff/applications/{app.pk}/documents/{document.pk}/",
        "/shanghai/staff/applications/",
        "/shanghai/staff/programs/",
        f"/shanghai/staff/programs/{sh_program.slug}/",
        f"/shanghai/staff/programs/{sh_program.slug}/ranking/",
    ):
        assert client.get(path).status_code == 404, path
    assert (
        client.post(f"/shanghai/staff/applications/{app.pk}/do/start_screening/").status_code == 404
    )
    client.force_login(outsider)
    for path in (
        f"/company/applications/{app.pk}/",
        f"/company/applications/{app.pk}/documents/{document.pk}/",
        f"/company/{company.pk}/",
    ):
        assert client.get(path).status_code == 404, path
    assert (
        client.post(f"/company/applications/{app.pk}/withdraw/", {"confirm": "yes"}).status_code
        == 404
    )
    app.refresh_from_db()
    assert app.state == "submitted"


def test_drafts_are_not_shown_to_staff(client, sh_program, company, startup_user, shanghai):
    app = complete_draft(sh_program, company, startup_user)
    client.force_login(shanghai.manager)
    assert client.get(f"/shanghai/staff/applications/{app.pk}/").status_code == 404


def test_queue_query_count_does_not_grow_with_rows(
    client, sh_program, startup_user, shanghai, django_assert_max_num_queries
):
    import random

    from vouchers.credit_code import credit_code_generate

    rng = random.Random(9)
    for i in range(12):
        company = services.company_create(
            actor=startup_user, legal_name=f"公司{i}", credit_code=credit_code_generate(rng)
        )
        app = complete_draft(sh_program, company, startup_user)
        services.application_submit(application=app, actor=startup_user)
        services.application_start_screening(application=app, actor=shanghai.manager)
        services.review_assign(application=app, actor=shanghai.manager, reviewer=shanghai.reviewer)
    client.force_login(shanghai.manager)
    with django_assert_max_num_queries(14):
        response = client.get("/shanghai/staff/applications/?sort=company__legal_name")
    assert response.content.decode().count("/shanghai/staff/applications/") >= 12
    with django_assert_max_num_queries(14):
        client.get("/shanghai/staff/applications/?q=公司1&state=screening&eligibility=pass")


def test_bulk_assign_from_the_queue(client, sh_program, company, startup_user, shanghai):
    app = complete_draft(sh_program, company, startup_user)
    services.application_submit(application=app, actor=startup_user)
    client.force_login(shanghai.reviewer)
    assert (
        client.post(
            "/shanghai/staff/applications/",
            {"applications": [app.pk], "reviewer": shanghai.reviewer.pk},
        ).status_code
        == 404
    )
    client.force_login(shanghai.manager)
    client.post(
        "/shanghai/staff/applications/",
        {"applications": [app.pk], "reviewer": shanghai.reviewer2.pk},
    )
    assert app.reviews.get().reviewer == shanghai.reviewer2


def test_public_notice_page_and_objection(client, sz_program, shenzhen, startup_user, outsider):
    company = services.company_create(
        actor=startup_user, legal_name="深圳公司", credit_code="91440300708461136T"
    )
    app = complete_draft(sz_program, company, startup_user)
    services.application_submit(application=app, actor=startup_user)
    Application.objects.filter(pk=app.pk).update(
        state="in_notice", notice_ends_at="2999-01-01T00:00:00+08:00"
    )
    page = client.get(f"/shenzhen/programs/{sz_program.slug}/notice/").content.decode()
    assert "深圳公司" in page
    assert "¥500,000.00" in page
    client.force_login(outsider)
    client.post(
        f"/shenzhen/programs/{sz_program.slug}/notice/", {"application": app.pk, "text": "关联交易"}
    )
    assert app.objections.get().text == "关联交易"


def test_program_managers_edit_programs_with_validation(client, sh_program, shanghai):
    client.force_login(shanghai.manager)
    url = f"/shanghai/staff/programs/{sh_program.slug}/"
    page = client.get(url)
    assert page.status_code == 200
    data = {k: v for k, v in page.context["form"].initial.items() if v is not None}
    data.update(
        {
            "award_min": "3000000",
            "award_max": "2000000",
            **{f"{prefix}-TOTAL_FORMS": "0" for prefix in ("rubric", "docs", "rules")},
            **{f"{prefix}-INITIAL_FORMS": "0" for prefix in ("rubric", "docs", "rules")},
        }
    )
    response = client.post(url, data)
    assert response.status_code == 200
    assert response.context["form"].errors["award_min"]
    client.force_login(shanghai.reviewer)
    assert client.get(url).status_code == 403


def test_the_public_notice_lists_an_application_only_during_its_period(
    client, sz_program, shenzhen, startup_user, outsider
):
    company = services.company_create(
        actor=startup_user, legal_name="深圳公司", credit_code="91440300708461136T"
    )
    app = complete_draft(sz_program, company, startup_user)
    services.application_submit(application=app, actor=startup_user)
    Application.objects.filter(pk=app.pk).update(
        state="in_notice", notice_ends_at="2020-01-01T00:00:00+08:00"
    )
    url = f"/shenzhen/programs/{sz_program.slug}/notice/"
    assert "深圳公司" not in client.get(url).content.decode()
    client.force_login(outsider)
    assert client.post(url, {"application": app.pk, "text": "迟到的异议"}).status_code == 404
    assert not app.objections.exists()


def test_members_keep_the_company_profile_current_but_not_its_credit_code(
    client, company, member2, outsider, shanghai
):
    from portal.models import AuditEvent

    code = company.credit_code
    client.force_login(member2)
    response = client.post(
        f"/company/{company.pk}/",
        {
            "form": "profile",
            "legal_name": "深度河流科技有限公司",
            "credit_code": "91350100M000100Y43",
            "registered_city": shanghai.city.pk,
            "registered_address": "上海市徐汇区云锦路 500 号",
            "founded_on": "2024-03-01",
            "headcount": "85",
            "revenue_last_year": "12000000",
        },
    )
    assert response.status_code == 302
    company.refresh_from_db()
    assert company.headcount == 85 and company.credit_code == code
    assert company.registered_address == "上海市徐汇区云锦路 500 号"
    event = AuditEvent.objects.get(action="company.update")
    assert event.data["headcount"] == "85" and "credit_code" not in event.data
    client.force_login(outsider)
    response = client.post(
        f"/company/{company.pk}/", {"form": "profile", "legal_name": "x", "headcount": "1"}
    )
    assert response.status_code == 404
    company.refresh_from_db()
    assert company.headcount == 85


def test_the_owner_invites_from_the_company_page_and_the_invitee_joins(
    client, company, startup_user, django_capture_on_commit_callbacks, settings
):
    from django.core import mail

    from tests.factories import UserFactory
    from vouchers.models import CompanyInvitation

    settings.SITE_URL = "https://vouchers.city.example/"  # the link is built on the setting
    client.force_login(startup_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/company/{company.pk}/", {"email": "new@startup.test"})
    assert response.status_code == 302
    token = CompanyInvitation.objects.get(company=company).token
    assert f"https://vouchers.city.example/company/join/{token}/" in mail.outbox[-1].body
    invitee = UserFactory(email="new@startup.test")
    client.force_login(invitee)
    assert client.post(f"/company/join/{token}/").status_code == 302
    assert company.members.filter(pk=invitee.pk).exists()
    assert client.get(f"/company/{company.pk}/").status_code == 200
