"""The company home and the operator console lead with what waits for them (issue #12,
item 1): each count equals the rows the test made, the link opens a list of as many,
and another company's or data center's rows never count."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from compute.models import (
    BatchStatus,
    Redemption,
    RedemptionStatus,
    Settlement,
    SettlementStatus,
    UsageBatch,
)
from tests.factories import UserFactory
from tests.vouchers.conftest import make_company
from vouchers.ledger import voucher_issue
from vouchers.models import Application, ApplicationState


def counts(html: str) -> dict[str, int]:
    found = re.findall(
        r'id="work-([\w.]+)">\s*<header><strong>[^<]*</strong><span class="count[^"]*">(\d+)<',
        html,
    )
    return {name: int(n) for name, n in found}


def _apps(program, company, user, state, n):
    for _ in range(n):
        Application.objects.create(
            city=program.city, program=program, company=company, created_by=user, state=state
        )


@pytest.fixture
def company_work(ledger_world, startup_user, shanghai):
    """The startup's company: 1 award to accept, 2 information requests, 1 draft; its
    voucher from the fixture is bound (active redemption); 2 more vouchers, one with a
    redemption requested and one unbound. Another company's rows of each kind must not count."""
    w = ledger_world
    _apps(w.program, w.company, startup_user, ApplicationState.INFO_REQUESTED, 2)
    _apps(w.program, w.company, startup_user, ApplicationState.DRAFT, 1)
    _apps(w.program, w.company, startup_user, ApplicationState.SUBMITTED, 3)
    _apps(w.program, w.company, startup_user, ApplicationState.AWARDED, 1)
    waiting = voucher_issue(
        program=w.program, company=w.company, amount=Decimal("100.00"), actor=shanghai.approver
    )
    Redemption.objects.create(
        voucher=waiting, data_center=w.dc, contract_ref="W-1", status=RedemptionStatus.REQUESTED
    )
    voucher_issue(
        program=w.program, company=w.company, amount=Decimal("100.00"), actor=shanghai.approver
    )
    stranger = UserFactory(email="founder@stranger.test")
    other = make_company(stranger, name="别家公司", code="91310000MA1FL9TQ2X")
    _apps(w.program, other, stranger, ApplicationState.INFO_REQUESTED, 4)
    _apps(w.program, other, stranger, ApplicationState.DRAFT, 4)
    _apps(w.program, other, stranger, ApplicationState.AWARDED, 4)
    voucher_issue(
        program=w.program, company=other, amount=Decimal("100.00"), actor=shanghai.approver
    )
    return w


def test_the_company_home_leads_with_its_own_work(client, company_work, startup_user):
    client.force_login(startup_user)
    html = client.get("/company/").content.decode()
    # other_voucher (Shenzhen) has an active redemption in the fixture: bound.
    assert counts(html) == {
        "vouchers.awards": 1,
        "vouchers.info_requested": 2,
        "vouchers.drafts": 1,
        "vouchers.outcomes_due": 0,  # the fixture's programs ask for no outcome report
        "compute.unbound": 1,
        "compute.redemptions": 1,
    }
    for url, n in [
        ("/company/?state=info_requested", 2),
        ("/company/?state=draft", 1),
        ("/company/?state=awarded", 1),
    ]:
        assert url in html
        assert len(client.get(url).context["applications"]) == n
    for url, n in [("/my/vouchers/?waiting=unbound", 1), ("/my/vouchers/?waiting=redemption", 1)]:
        assert url in html
        assert client.get(url).context["page"].paginator.count == n


@pytest.fixture
def console_work(ledger_world, operator, shanghai, shenzhen):
    """Guian (the operator's): 2 redemptions requested, 1 failed batch, 1 statement
    issued to confirm, its feed failing. Zhongwei's rows of each kind must not count."""
    w = ledger_world
    for i in range(2):
        voucher = voucher_issue(
            program=w.program, company=w.company, amount=Decimal("100.00"), actor=shanghai.approver
        )
        Redemption.objects.create(voucher=voucher, data_center=w.dc, contract_ref=f"G-{i}")
    other_voucher = voucher_issue(
        program=w.other_program,
        company=w.company,
        amount=Decimal("100.00"),
        actor=shenzhen.approver,
    )
    Redemption.objects.create(voucher=other_voucher, data_center=w.other_dc, contract_ref="Z-1")
    for dc, status in [
        (w.dc, BatchStatus.FAILED),
        (w.dc, BatchStatus.DONE),
        (w.other_dc, BatchStatus.FAILED),
    ]:
        UsageBatch.objects.create(data_center=dc, status=status, body_hash="x", received=1)
    for dc, city, status in [
        (w.dc, shanghai.city, SettlementStatus.ISSUED),
        (w.dc, shanghai.city, SettlementStatus.PAID),
        (w.other_dc, shenzhen.city, SettlementStatus.ISSUED),
    ]:
        month = 1 if status == SettlementStatus.ISSUED else 2
        Settlement.objects.create(
            city=city, data_center=dc, period=date(2026, month, 1), status=status
        )
    w.dc.feed_url, w.dc.feed_healthy, w.dc.feed_error = "https://feed.test/", False, "HTTP 502"
    w.dc.save()
    return w


def test_the_console_leads_with_what_waits_for_the_operator(client, console_work, operator):
    client.force_login(operator)
    html = client.get("/dc/guian/").content.decode()
    assert counts(html) == {
        "console.redemptions": 2,
        "console.failed_batches": 1,
        "console.statements": 1,
        "console.feed": 1,
    }
    assert "HTTP 502" in html
    assert (
        client.get("/dc/guian/redemptions/?status=requested").context["page"].paginator.count == 2
    )
    assert client.get("/dc/guian/batches/?failed=1").context["page"].paginator.count == 1
    assert client.get("/dc/guian/settlements/?status=issued").context["page"].paginator.count == 1


def test_the_consoles_queries_do_not_grow(client, console_work, operator, shanghai):
    client.force_login(operator)
    with CaptureQueriesContext(connection) as before:
        client.get("/dc/guian/")
    w = console_work
    for i in range(10):
        voucher = voucher_issue(
            program=w.program, company=w.company, amount=Decimal("1.00"), actor=shanghai.approver
        )
        Redemption.objects.create(voucher=voucher, data_center=w.dc, contract_ref=f"M-{i}")
        UsageBatch.objects.create(
            data_center=w.dc, status=BatchStatus.FAILED, body_hash="y", received=1
        )
    with CaptureQueriesContext(connection) as after:
        client.get("/dc/guian/")
    assert len(after.captured_queries) == len(before.captured_queries)


def test_another_operator_finds_the_console_missing(client, console_work):
    client.force_login(UserFactory(email="ops@elsewhere.test"))
    assert client.get("/dc/guian/").status_code == 404
