"""Exports of usage records and settlement statements (issue #12 item 7), for city
staff, data-center operators and companies: their own rows only, the statements page's
filter kept, audited, and a 404 for another city, data center or company."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.urls import reverse

from compute.models import Settlement, SettlementStatus, UsageBatch, UsageRecord
from portal.models import AuditEvent
from tests.exporting import csv_rows, xlsx_rows
from tests.factories import UserFactory
from tests.vouchers.test_exports import client_for


def _records(voucher, dc, redemption, specs) -> list[UsageRecord]:
    batch = UsageBatch.objects.create(data_center=dc, body_hash="0" * 64, received=len(specs))
    return [
        UsageRecord.objects.create(
            data_center=dc,
            record_id=record_id,
            batch=batch,
            voucher=voucher,
            redemption=redemption,
            started_at=datetime(2026, 11, 2, 0, tzinfo=UTC),
            ended_at=datetime(2026, 11, 2, 12, tzinfo=UTC),
            resource="Ascend 910B",
            domestic=True,
            quantity=Decimal("12.500"),
            amount=amount,
            covered_amount=amount * Decimal("0.3"),
        )
        for record_id, amount in specs
    ]


@pytest.fixture
def usage_world(ledger_world, operator, world):
    lw = ledger_world
    mine = _records(
        lw.voucher,
        lw.dc,
        lw.redemption,
        [("=cmd|' /C calc'!A0", Decimal("100.00")), ("r-2", Decimal("20.10"))],
    )
    other_redemption = lw.other_voucher.redemptions.get()
    theirs = _records(lw.other_voucher, lw.other_dc, other_redemption, [("z-1", Decimal("7.00"))])
    sh, sz = world["shanghai"].city, world["shenzhen"].city
    period = date(2026, 11, 1)
    statements = {
        "draft": Settlement.objects.create(city=sh, data_center=lw.dc, period=period),
        "issued": Settlement.objects.create(
            city=sh,
            data_center=lw.dc,
            period=date(2026, 10, 1),
            status=SettlementStatus.ISSUED,
            records=2,
            amount_total=Decimal("120.10"),
            covered_total=Decimal("36.03"),
        ),
        "other": Settlement.objects.create(city=sz, data_center=lw.other_dc, period=period),
    }
    other_operator = UserFactory(email="ops@zhongwei.test")
    lw.other_dc.operators.add(other_operator)
    return {
        "mine": mine,
        "theirs": theirs,
        "statements": statements,
        "other_operator": other_operator,
    }


def _ids(rows) -> list[int]:
    return [int(r[0]) for r in rows[1:]]


def test_city_usage_export_is_the_citys_records(usage_world, shanghai):
    client = client_for(shanghai.auditor)
    rows = csv_rows(client.get(reverse("compute:usage_export_csv", args=["shanghai"])))
    assert _ids(rows) == [r.pk for r in usage_world["mine"]]
    assert rows[0][1] == "Record"
    assert rows[1][1] == "'=cmd|' /C calc'!A0"  # neutralised
    assert rows[1][9:11] == ["100.00", "30.00"]  # exact amounts, numbers as numbers
    sheet = xlsx_rows(client.get(reverse("compute:usage_export_xlsx", args=["shanghai"])))
    assert [int(r[0]) for r in sheet[1:]] == [r.pk for r in usage_world["mine"]]
    assert sheet[2][9] == pytest.approx(20.10)
    event = AuditEvent.objects.filter(city=shanghai.city).order_by("-seq").first()
    assert (event.action, event.data["format"]) == ("export.usage", "xlsx")


def test_operator_exports_its_data_centers_usage_and_issued_statements(
    usage_world, operator, ledger_world
):
    client = client_for(operator)
    slug = ledger_world.dc.slug
    rows = csv_rows(client.get(reverse("compute:console_usage_export_csv", args=[slug])))
    assert _ids(rows) == [r.pk for r in usage_world["mine"]]
    statements = csv_rows(client.get(reverse("compute:console_settlement_export_csv", args=[slug])))
    assert _ids(statements) == [usage_world["statements"]["issued"].pk]  # drafts are the city's
    event = AuditEvent.objects.filter(city=None, action="export.settlements").get()
    assert event.data["data_center"] == slug


def test_company_exports_the_usage_of_its_vouchers(usage_world, ledger_world, startup_user):
    client = client_for(startup_user)
    rows = csv_rows(client.get(reverse("compute:my_usage_export_csv")))
    # The company holds both vouchers (one per city): all its usage, nobody else's.
    expected = sorted(r.pk for r in [*usage_world["mine"], *usage_world["theirs"]])
    assert _ids(rows) == expected
    one = csv_rows(
        client.get(reverse("compute:my_usage_export_csv") + f"?voucher={ledger_world.voucher.code}")
    )
    assert _ids(one) == [r.pk for r in usage_world["mine"]]


def test_settlement_export_keeps_the_pages_filter(usage_world, shanghai):
    client = client_for(shanghai.manager)
    for query in ("", "status=issued", "period=2026-11"):
        screen = client.get(f"/shanghai/staff/settlements/?{query}")
        on_screen = [s.pk for s in screen.context["page"]]
        url = reverse("compute:settlement_export_csv", args=["shanghai"]) + f"?{query}"
        assert _ids(csv_rows(client.get(url))) == on_screen
    event = AuditEvent.objects.filter(action="export.settlements").order_by("-seq").first()
    assert event.data["filter"] == {"period": "2026-11-01"}


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_another_city_data_center_or_company_gets_404(usage_world, world, ledger_world, fmt):
    before = AuditEvent.objects.count()
    for name in ("usage_export", "settlement_export"):
        url = reverse(f"compute:{name}_{fmt}", args=["shanghai"])
        for user in [*world["shenzhen"].staff(), world["startup"], world["outsider"]]:
            assert client_for(user).get(url).status_code == 404, (name, user.email)
    other = client_for(usage_world["other_operator"])
    for name in ("console_usage_export", "console_settlement_export"):
        url = reverse(f"compute:{name}_{fmt}", args=[ledger_world.dc.slug])
        assert other.get(url).status_code == 404
        assert client_for(world["outsider"]).get(url).status_code == 404
    outsider = client_for(world["outsider"])
    assert outsider.get(reverse(f"compute:my_usage_export_{fmt}")).status_code == 404
    url = reverse(f"compute:my_usage_export_{fmt}") + "?voucher=NOT-MINE"
    assert client_for(world["startup"]).get(url).status_code == 404
    assert AuditEvent.objects.count() == before


def test_usage_csv_written_by_postgresql_is_the_xlsx_row_for_row(
    usage_world, ledger_world, shanghai
):
    """The usage CSV is PostgreSQL's COPY (for speed), the XLSX is written in Python
    from the same query: every cell a spreadsheet would run as a formula comes out
    neutralised in both, text with quotes, commas and line breaks survives, booleans
    are 1/0, amounts exact, the status in the user's language."""
    lw = ledger_world
    odd = [f"{p}x" for p in ("=", "+", "-", "@", "\t", "\r")] + ['a,"b"\nc', "'=quoted"]
    records = _records(lw.voucher, lw.dc, lw.redemption, [(r, Decimal("1.10")) for r in odd])
    UsageRecord.objects.filter(pk=records[0].pk).update(resource="=HYPERLINK()", domestic=False)
    client = client_for(shanghai.auditor)
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    rows = csv_rows(client.get(reverse("compute:usage_export_csv", args=["shanghai"])))
    sheet = xlsx_rows(client.get(reverse("compute:usage_export_xlsx", args=["shanghai"])))
    assert rows[0] == sheet[0] and rows[0][1] == "记录"
    by_id = {int(r[0]): r for r in rows[1:]}
    assert [by_id[r.pk][1] for r in records] == ["'" + r for r in odd[:6]] + odd[6:]
    assert by_id[records[0].pk][4:6] == ["'=HYPERLINK()", "0"]
    assert by_id[records[1].pk][5] == "1"
    assert {r[11] for r in rows[1:]} == {"已接受"}
    for row, cells in zip(rows[1:], sheet[1:], strict=True):
        # repr: the shortest text that reads back as the same float (":g" kept six digits,
        # so a record id of 3,960,001 read as 3.96E+6 and the test failed by the data drawn).
        as_text = [repr(c) if isinstance(c, float) else c for c in cells]
        numbers = [0, 5, 8, 9, 10]  # a spreadsheet's numbers: compared as numbers
        assert [Decimal(row[k]) for k in numbers] == [Decimal(as_text[k]) for k in numbers]
        assert [v for k, v in enumerate(row) if k not in numbers] == [
            v for k, v in enumerate(as_text) if k not in numbers
        ]
