"""A startup applies in the browser with a document, Shanghai's staff screen and approve
it, and the startup finds its voucher — in Chinese, then in English."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import sign_in
from tests.factories import UserFactory
from vouchers import services
from vouchers.models import Application

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def test_apply_screen_approve_and_see_the_voucher(live_server, new_page, shanghai, tmp_path):
    from tests.vouchers.conftest import program_values

    program = services.program_save(
        city=shanghai.city, actor=shanghai.manager, values=program_values()
    )
    founder = UserFactory(email="ceo@e2e.test")
    services.company_create(
        actor=founder, legal_name="端到端科技有限公司", credit_code="91440300708461136T"
    )
    base = live_server.url
    pdf = tmp_path / "licence.pdf"
    pdf.write_bytes(PDF)

    page = new_page()
    sign_in(page, base, founder.email)
    page.goto(f"{base}/shanghai/programs/{program.slug}/")
    page.click("main form button[type=submit]")  # 开始申请
    page.wait_for_load_state()
    page.fill("input[name=title]", "端到端大模型")
    page.fill("textarea[name=summary]", "训练多模态模型")
    page.fill("textarea[name=model_plans]", "预训练与微调")
    page.click("button[value=next]")
    page.fill("input[name=plan-0-accelerator]", "Ascend 910B")
    page.check("input[name=plan-0-domestic]")
    page.fill("input[name=plan-0-hours]", "5000")
    page.click("button[value=next]")
    page.fill("input[name=requested_amount]", "300000")
    for name in (
        "declares_no_related_party",
        "declares_no_other_subsidy",
        "declares_true_information",
    ):
        page.check(f"input[name={name}]")
    page.click("button[value=next]")
    page.select_option("select[name=doc_type]", "business_licence")
    page.set_input_files("input[name=file]", str(pdf))
    page.click("button[value=stay]")
    page.wait_for_load_state()
    assert "licence.pdf" in page.content()
    page.goto(page.url.split("?")[0] + "?step=review")
    page.click("text=提交申请")
    page.wait_for_load_state()
    application = Application.objects.get()
    assert application.state == "submitted"

    staff = new_page()
    sign_in(staff, base, shanghai.reviewer.email)
    staff.goto(f"{base}/shanghai/staff/applications/")
    staff.click(f"a[href='/shanghai/staff/applications/{application.pk}/']")
    staff.click("text=开始形式审查")
    staff.wait_for_load_state()
    staff.click("text=形式审查通过")
    staff.wait_for_load_state()
    approver = new_page()
    sign_in(approver, base, shanghai.approver.email)
    approver.goto(f"{base}/shanghai/staff/applications/{application.pk}/")
    approver.click("summary:has-text('批准并发放算力券')")
    approver.fill("input[name=amount]", "250000")
    approver.fill("textarea[name=reason]", "按计划核定")  # less than requested: a reason
    approver.click("button:has-text('批准')")
    approver.wait_for_load_state()
    application.refresh_from_db()
    assert application.state == "approved"

    page.goto(f"{base}/company/")
    code = application.voucher.code
    assert code in page.content()
    page.click(f"text={code}")
    assert "¥250,000.00" in page.content()
    page.click("button[value=en]")
    page.wait_for_load_state()
    assert "Usage per data center" in page.content()
