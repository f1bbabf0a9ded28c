"""Outcome reports' pages: the company's and the program manager's, isolation (another
company, another city: 404 and nothing changes) and the list pages' query counts."""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal

import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from portal.audit import SYSTEM
from tests.factories import UserFactory
from tests.vouchers.conftest import PDF
from tests.vouchers.outcome_world import (  # noqa: F401 - fixtures and constants
    FINAL_DUE,
    MIDTERM_DUE,
    START,
    S,
    filled,
    final,
    program,
    voucher,
)
from vouchers import services
from vouchers.credit_code import credit_code_generate
from vouchers.ledger import voucher_issue
from vouchers.models import (
    OutcomeDocument,
)

# --- pages --------------------------------------------------------------------------------------


def test_the_company_fills_in_uploads_and_submits_on_its_page(client, final, startup_user):
    client.force_login(startup_user)
    url = reverse("vouchers:my_outcome", args=[final.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert "500,000.00" in page.content.decode()
    response = client.post(
        reverse("vouchers:my_outcome_document_add", args=[final.pk]),
        {"doc_type": "paper", "file": SimpleUploadedFile("paper.pdf", PDF)},
    )
    assert response.status_code == 302
    document = OutcomeDocument.objects.get(report=final)
    assert (
        client.get(
            reverse("vouchers:my_outcome_document", args=[final.pk, document.pk])
        ).status_code
        == 200
    )
    response = client.post(
        url,
        {
            "models_trained": "1",
            "largest_model_parameters": "13",
            "products_launched": "",
            "papers_published": "2",
            "hires": "4",
            "benchmarks": "",
            "summary": "训练了一个 130 亿参数模型。",
            "go": "submit",
        },
    )
    assert response.status_code == 302
    final.refresh_from_db()
    assert (final.state, final.models_trained, final.largest_model_parameters) == (
        S.SUBMITTED,
        1,
        Decimal("13.00"),
    )
    page = client.get(url).content.decode()
    assert "Save and submit" not in page and "保存并提交" not in page
    # Posted again from a stale tab: refused in words, nothing saved.
    again = client.post(url, {"hires": "99", "summary": "改", "go": "save"})
    assert again.status_code == 200
    assert (
        "不能再修改" in again.content.decode()
        or "can no longer be changed" in again.content.decode()
    )
    final.refresh_from_db()
    assert (final.hires, final.state) == (4, S.SUBMITTED)


def test_a_bad_post_shows_its_errors_and_saves_nothing(client, final, startup_user):
    client.force_login(startup_user)
    url = reverse("vouchers:my_outcome", args=[final.pk])
    response = client.post(url, {"hires": "-3", "largest_model_parameters": "abc", "go": "submit"})
    assert response.status_code == 200
    final.refresh_from_db()
    assert final.state == S.DRAFT and final.hires == 0
    response = client.post(url, {"summary": "", "go": "submit"})
    assert response.status_code == 200
    final.refresh_from_db()
    assert final.state == S.DRAFT


def test_the_company_home_lists_the_report_due_soon(client, final, startup_user):
    with time_machine.travel(FINAL_DUE - timedelta(days=3), tick=False):
        client.force_login(startup_user)
        page = client.get(reverse("vouchers:company_home")).content.decode()
        assert reverse("vouchers:my_outcome", args=[final.pk]) in page
        todo = client.get(reverse("vouchers:my_outcomes") + "?todo=1").content.decode()
        assert final.voucher.code in todo
    with time_machine.travel(START + timedelta(days=10), tick=False):
        client.force_login(startup_user)
        page = client.get(reverse("vouchers:company_home")).content.decode()
        assert reverse("vouchers:my_outcome", args=[final.pk]) not in page


def test_the_program_manager_accepts_from_the_queue(client, final, startup_user, shanghai):
    filled(final, startup_user)
    services.outcome_report_submit(report=final, actor=startup_user)
    client.force_login(shanghai.manager)
    home = client.get(reverse("portal:staff_home", args=["shanghai"])).content.decode()
    detail = reverse("vouchers:staff_outcome", args=["shanghai", final.pk])
    assert detail in home
    queue = client.get(reverse("vouchers:staff_outcomes", args=["shanghai"]) + "?show=waiting")
    assert detail in queue.content.decode()
    assert client.get(detail).status_code == 200
    accept = reverse("vouchers:staff_outcome_action", args=["shanghai", final.pk, "accept"])
    assert client.post(accept, {"comment": "通过"}).status_code == 302
    final.refresh_from_db()
    assert final.state == S.ACCEPTED


def test_returning_without_comments_is_a_form_error_not_a_change(
    client, final, startup_user, shanghai
):
    filled(final, startup_user)
    services.outcome_report_submit(report=final, actor=startup_user)
    client.force_login(shanghai.manager)
    back = reverse("vouchers:staff_outcome_action", args=["shanghai", final.pk, "return"])
    assert client.post(back, {"comment": ""}).status_code == 400
    bogus = reverse("vouchers:staff_outcome_action", args=["shanghai", final.pk, "delete"])
    assert client.post(bogus, {}).status_code == 302
    final.refresh_from_db()
    assert final.state == S.SUBMITTED


def test_staff_who_are_not_program_managers_see_but_cannot_decide(
    client, final, startup_user, shanghai
):
    filled(final, startup_user)
    services.outcome_report_submit(report=final, actor=startup_user)
    for user in (shanghai.auditor, shanghai.reviewer, shanghai.approver):
        client.force_login(user)
        assert (
            client.get(reverse("vouchers:staff_outcome", args=["shanghai", final.pk])).status_code
            == 200
        )
        accept = reverse("vouchers:staff_outcome_action", args=["shanghai", final.pk, "accept"])
        assert client.post(accept, {}).status_code == 403
    final.refresh_from_db()
    assert final.state == S.SUBMITTED


def test_another_city_and_another_company_get_404_and_change_nothing(
    client, final, startup_user, shenzhen, outsider
):
    filled(final, startup_user)
    document = services.outcome_document_add(
        report=final,
        actor=startup_user,
        doc_type="outcome_report",
        upload=SimpleUploadedFile("r.pdf", PDF),
    )
    services.outcome_report_submit(report=final, actor=startup_user)
    client.force_login(shenzhen.manager)
    for path in (
        reverse("vouchers:staff_outcome", args=["shenzhen", final.pk]),
        reverse("vouchers:staff_outcome_document", args=["shenzhen", final.pk, document.pk]),
    ):
        assert client.get(path).status_code == 404, path
    for action in ("accept", "return"):
        path = reverse("vouchers:staff_outcome_action", args=["shenzhen", final.pk, action])
        assert client.post(path, {"comment": "x"}).status_code == 404
    # Not a member of the city in the URL either.
    path = reverse("vouchers:staff_outcome", args=["shanghai", final.pk])
    assert client.get(path).status_code == 404
    listed = client.get(reverse("vouchers:staff_outcomes", args=["shenzhen"])).content.decode()
    assert final.voucher.code not in listed
    other = UserFactory(email="other@company.test")
    services.company_create(
        actor=other,
        legal_name="别家科技有限公司",
        credit_code=credit_code_generate(random.Random(7)),
    )
    for user in (other, outsider):
        client.force_login(user)
        assert client.get(reverse("vouchers:my_outcome", args=[final.pk])).status_code == 404
        assert (
            client.post(
                reverse("vouchers:my_outcome", args=[final.pk]), {"summary": "x", "go": "save"}
            ).status_code
            == 404
        )
        assert (
            client.get(
                reverse("vouchers:my_outcome_document", args=[final.pk, document.pk])
            ).status_code
            == 404
        )
        assert (
            client.post(
                reverse("vouchers:my_outcome_document_remove", args=[final.pk, document.pk])
            ).status_code
            == 404
        )
        assert (
            final.voucher.code not in client.get(reverse("vouchers:my_outcomes")).content.decode()
        )
    final.refresh_from_db()
    assert final.state == S.SUBMITTED and final.summary.startswith("训练")
    assert OutcomeDocument.objects.filter(pk=document.pk).exists()


def _more_reports(program, n: int) -> None:
    for i in range(n):
        user = UserFactory(email=f"founder{i}@many.test")
        company = services.company_create(
            actor=user,
            legal_name=f"公司{i}",
            credit_code=credit_code_generate(random.Random(100 + i)),
        )
        voucher_issue(program=program, company=company, amount=Decimal("100000"), actor=SYSTEM)


def test_list_pages_cost_the_same_queries_for_more_reports(
    client, program, voucher, startup_user, shanghai, django_assert_max_num_queries
):
    def counted(user, url) -> int:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        client.force_login(user)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        return len(queries)

    staff_url = reverse("vouchers:staff_outcomes", args=["shanghai"])
    my_url = reverse("vouchers:my_outcomes")
    few = counted(shanghai.manager, staff_url), counted(startup_user, my_url)
    _more_reports(program, 6)
    for _i in range(4):
        extra = voucher_issue(
            program=program,
            company=voucher.company,
            amount=Decimal("100000"),
            actor=SYSTEM,
        )
        assert extra.outcome_reports.count() == 2
    many = counted(shanghai.manager, staff_url), counted(startup_user, my_url)
    assert many == few
    client.force_login(shanghai.manager)
    with django_assert_max_num_queries(14):
        client.get(staff_url)
    client.force_login(startup_user)
    with django_assert_max_num_queries(12):
        client.get(my_url)
