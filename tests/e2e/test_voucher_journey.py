"""A company asks a data center to redeem its voucher, the operator accepts in the
console, usage arrives over the API, and the company sees its balance fall."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from compute.models import Redemption, RedemptionStatus
from tests.compute.conftest import record
from tests.e2e.conftest import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_redemption_and_usage_in_the_browser(
    live_server, new_page, ledger_world, operator, eager_tasks
):
    w = ledger_world
    w.redemption.status = RedemptionStatus.CLOSED
    w.redemption.save()
    base = live_server.url

    company = new_page()
    sign_in(company, base, "founder@startup.test")
    company.goto(f"{base}/my/vouchers/")
    company.click(f"text={w.voucher.code}")
    assert "¥1,000.00" in company.content()
    company.click("summary")  # "申请核销"
    company.select_option("select[name=data_center]", str(w.dc.pk))
    company.fill("input[name=contract_ref]", "GA-E2E-1")
    company.click("main form button[type=submit]")
    company.wait_for_load_state()
    assert "核销申请已提交" in company.content()

    ops = new_page(locale="en-US")
    sign_in(ops, base, operator.email)
    ops.goto(f"{base}/dc/guian/")
    ops.click("a[href$='/accept/']")  # 接受 (the work list above also says 待接受)
    ops.click("main form button[type=submit]")  # the confirmation
    ops.wait_for_load_state()
    redemption = Redemption.objects.get(contract_ref="GA-E2E-1")
    assert redemption.status == "active"

    response = httpx.post(
        f"{base}/api/v1/usage/batches",
        json={"records": [record(1, w.voucher.code, amount="200.00")]},
        headers={"Authorization": f"Bearer {w.key}"},
    )
    assert response.status_code == 202
    company.reload()
    assert "¥940.00" in company.content()  # 200.00 x 0.30 = 60.00 covered
    w.voucher.refresh_from_db()
    assert w.voucher.balance == Decimal("940.00")
    company.click("button[value=en]")  # the language switch
    company.wait_for_load_state()
    assert "Usage per data center" in company.content()
