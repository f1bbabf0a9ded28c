"""Monthly settlements: totals from the ledger, issued statements frozen, adjustments."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from compute.models import Settlement, UsageRecord
from compute.settlements import (
    settlement_build,
    settlement_confirm,
    settlement_issue,
    settlement_mark_paid,
    settlements_build_month,
)
from compute.statements import statement_csv, statement_pdf
from portal.audit import SYSTEM
from portal.errors import DomainError
from tests.compute.conftest import record
from tests.concurrency import outcome_codes, race
from vouchers.models import EntryKind, LedgerEntry

pytestmark = pytest.mark.usefixtures("eager_tasks")
NOV, DEC = date(2026, 11, 1), date(2026, 12, 1)


def push(w, records, capture):
    with capture(execute=True):
        w.api.post("/api/v1/usage/batches", {"records": records}, format="json")


@pytest.fixture
def november(ledger_world, django_capture_on_commit_callbacks):
    w = ledger_world
    records = [record(i, w.voucher.code, amount=f"{100 + i}.00") for i in range(5)]
    # One ends in the first minute of December (Shanghai): next month's statement.
    records.append(
        record(
            9,
            w.voucher.code,
            started_at="2026-11-30T20:00:00+08:00",
            ended_at="2026-12-01T00:00:30+08:00",
        )
    )
    push(w, records, django_capture_on_commit_callbacks)
    return w


def test_totals_equal_the_ledgers_charges_for_the_month(november, shanghai):
    w = november
    s = settlement_build(city=shanghai.city, data_center=w.dc, period=NOV)
    assert s.records == 5
    ids = list(s.lines.values_list("usage_record_id", flat=True))
    charged = -sum(
        LedgerEntry.objects.filter(kind=EntryKind.CHARGE, usage_record_id__in=ids).values_list(
            "amount", flat=True
        )
    )
    assert s.covered_total == charged == Decimal("153.00")  # (100+…+104) x 0.30
    assert s.amount_total == Decimal("510.00")
    dec = settlement_build(city=shanghai.city, data_center=w.dc, period=DEC)
    assert dec.records == 1


def test_a_void_after_issue_becomes_next_months_adjustment(november, shanghai):
    w = november
    s = settlement_build(city=shanghai.city, data_center=w.dc, period=NOV)
    settlement_issue(settlement=s, actor=shanghai.manager)
    w.api.post("/api/v1/usage/records/dc-2026-11-000002/void", {"reason": "重复"}, format="json")
    with pytest.raises(DomainError) as err:
        settlement_build(city=shanghai.city, data_center=w.dc, period=NOV)  # issued: frozen
    assert err.value.code == "conflict"
    s.refresh_from_db()
    assert (s.records, s.covered_total) == (5, Decimal("153.00"))
    dec = settlement_build(city=shanghai.city, data_center=w.dc, period=DEC)
    adjustment = dec.lines.get(kind="adjustment")
    assert (adjustment.record_id, adjustment.covered_amount) == (
        "dc-2026-11-000002",
        Decimal("-30.60"),
    )
    # Rebuilding the draft does not add the adjustment twice.
    dec = settlement_build(city=shanghai.city, data_center=w.dc, period=DEC)
    assert dec.lines.filter(kind="adjustment").count() == 1


def test_a_void_before_issue_drops_out_on_rebuild(november, shanghai):
    w = november
    settlement_build(city=shanghai.city, data_center=w.dc, period=NOV)
    w.api.post("/api/v1/usage/records/dc-2026-11-000002/void", {"reason": "重复"}, format="json")
    s = settlement_build(city=shanghai.city, data_center=w.dc, period=NOV)
    assert s.records == 4
    assert not s.lines.filter(record_id="dc-2026-11-000002").exists()


def test_the_state_machine_and_roles(november, shanghai, shenzhen):
    w = november
    s = settlement_build(city=shanghai.city, data_center=w.dc, period=NOV)

    def refused(step, code: str, status: str, **kwargs) -> DomainError:
        with pytest.raises(DomainError) as err:
            step(settlement=s, **kwargs)
        assert err.value.code == code, (step.__name__, kwargs, err.value.message)
        assert Settlement.objects.get(pk=s.pk).status == status
        return err.value

    refused(
        settlement_confirm, "conflict", "draft", data_center=w.dc, actor=SYSTEM
    )  # not issued yet
    refused(settlement_issue, "forbidden", "draft", actor=shanghai.reviewer)
    refused(settlement_issue, "forbidden", "draft", actor=shenzhen.manager)
    s = settlement_issue(settlement=s, actor=shanghai.manager)
    refused(settlement_issue, "conflict", "issued", actor=shanghai.manager)
    refused(settlement_mark_paid, "conflict", "issued", actor=shanghai.manager, payment_ref="X")
    refused(settlement_confirm, "not_found", "issued", data_center=w.other_dc, actor=SYSTEM)
    s = settlement_confirm(settlement=s, data_center=w.dc, actor=SYSTEM)
    refused(
        settlement_mark_paid, "forbidden", "confirmed", actor=shanghai.reviewer, payment_ref="X"
    )
    error = refused(
        settlement_mark_paid, "invalid", "confirmed", actor=shanghai.manager, payment_ref=" "
    )
    assert list(error.fields) == ["payment_ref"]
    s = settlement_mark_paid(settlement=s, actor=shanghai.manager, payment_ref="BANK-2026-12-01")
    assert s.status == "paid"


def test_csv_and_pdf(november, shanghai):
    s = settlement_build(city=shanghai.city, data_center=november.dc, period=NOV)
    text = statement_csv(s).decode("utf-8-sig")
    assert "dc-2026-11-000001" in text
    assert text.strip().splitlines()[-1].split(",")[-1] == "153.00"
    pdf = statement_pdf(s)
    assert pdf.startswith(b"%PDF")
    assert len(pdf) > 1000


def test_api_lists_only_the_callers_statements(november, shanghai):
    w = november
    s = settlement_build(city=shanghai.city, data_center=w.dc, period=NOV)
    assert w.api.get("/api/v1/settlements").json()["results"] == []  # a draft is the city's
    assert w.api.get(f"/api/v1/settlements/{s.pk}").status_code == 404
    settlement_issue(settlement=s, actor=shanghai.manager)
    body = w.api.get("/api/v1/settlements?period=2026-11").json()
    assert body["results"] == [
        {
            "id": s.pk,
            "city": "shanghai",
            "period": "2026-11",
            "status": "issued",
            "records": 5,
            "amount_total": "510.00",
            "covered_total": "153.00",
        }
    ]
    detail = w.api.get(f"/api/v1/settlements/{s.pk}").json()
    assert len(detail["lines"]) == 5
    assert detail["lines"][0]["voucher"] == w.voucher.code
    assert w.other_api.get(f"/api/v1/settlements/{s.pk}").status_code == 404
    assert w.api.get("/api/v1/settlements?period=2026-13").status_code == 400


def test_screens_and_downloads(
    client, november, shanghai, shenzhen, operator, django_assert_max_num_queries
):
    client.force_login(shanghai.manager)
    client.post("/shanghai/staff/settlements/", {"period": "2026-11"})
    s = Settlement.objects.get(period=NOV)
    with django_assert_max_num_queries(12):
        assert client.get("/shanghai/staff/settlements/").status_code == 200
    client.post(f"/shanghai/staff/settlements/{s.pk}/", {"step": "issue"})
    s.refresh_from_db()
    assert s.status == "issued"
    assert client.get(f"/shanghai/staff/settlements/{s.pk}/csv/")["Content-Type"].startswith(
        "text/csv"
    )
    # The download follows the reader's language.
    client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    english = client.get(f"/shanghai/staff/settlements/{s.pk}/csv/").content.decode("utf-8-sig")
    assert english.startswith(f"City,Data center,Period,Status\r\n{s.city.name_en},")
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    chinese = client.get(f"/shanghai/staff/settlements/{s.pk}/csv/").content.decode("utf-8-sig")
    assert chinese.startswith(f"城市,数据中心,结算期,状态\r\n{s.city.name_zh},")
    client.force_login(operator)
    assert client.get(f"/dc/guian/settlements/{s.pk}/pdf/")["Content-Type"] == "application/pdf"
    client.post(f"/dc/guian/settlements/{s.pk}/", {"step": "confirm"})
    s.refresh_from_db()
    assert s.status == "confirmed"
    # The console offers one step; another is not there, and confirming twice is refused.
    assert client.post(f"/dc/guian/settlements/{s.pk}/", {"step": "mark_paid"}).status_code == 404
    again = client.post(f"/dc/guian/settlements/{s.pk}/", {"step": "confirm"}, follow=True)
    assert [m.level_tag for m in again.context["messages"]] == ["error"]
    assert Settlement.objects.get(pk=s.pk).status == "confirmed"
    client.force_login(shenzhen.manager)
    assert client.get(f"/shanghai/staff/settlements/{s.pk}/").status_code == 404
    assert client.get("/shanghai/staff/settlements/").status_code == 404


def test_monthly_task_builds_drafts_for_every_registration(november, shanghai):
    built = settlements_build_month(period=NOV)
    assert {(x.city.slug, x.data_center.slug) for x in built} == {
        ("shanghai", "guian"),
        ("shenzhen", "zhongwei"),
    }
    assert UsageRecord.objects.count() == 6


def test_every_illegal_transition_is_a_conflict_and_changes_nothing(november, shanghai):
    w = november
    s = settlement_build(city=shanghai.city, data_center=w.dc, period=NOV)
    attempts = {
        "issue": lambda: settlement_issue(settlement=s, actor=shanghai.manager),
        "confirm": lambda: settlement_confirm(settlement=s, data_center=w.dc, actor=SYSTEM),
        "mark_paid": lambda: settlement_mark_paid(
            settlement=s, actor=shanghai.manager, payment_ref="BANK-1"
        ),
    }
    legal = {"draft": "issue", "issued": "confirm", "confirmed": "mark_paid", "paid": None}
    for status, next_step in legal.items():
        Settlement.objects.filter(pk=s.pk).update(status=status)
        for step, attempt in attempts.items():
            if step == next_step:
                continue
            with pytest.raises(DomainError) as refused:
                attempt()
            assert refused.value.code == "conflict", (status, step)
            assert Settlement.objects.get(pk=s.pk).status == status
        if status != "draft":
            with pytest.raises(DomainError) as refused:
                settlement_build(city=shanghai.city, data_center=w.dc, period=NOV)
            assert refused.value.code == "conflict"


def test_only_operators_confirm_for_their_data_center(november, shanghai, operator):
    w = november
    s = settlement_issue(
        settlement=settlement_build(city=shanghai.city, data_center=w.dc, period=NOV),
        actor=shanghai.manager,
    )
    with pytest.raises(DomainError) as err:
        settlement_confirm(settlement=s, data_center=w.dc, actor=shanghai.manager)
    assert err.value.code == "forbidden"
    assert Settlement.objects.get(pk=s.pk).status == "issued"
    assert settlement_confirm(settlement=s, data_center=w.dc, actor=operator).status == "confirmed"


def test_screens_refuse_other_roles_and_tenants(client, november, shanghai, operator):
    from tests.factories import UserFactory

    w = november
    s = settlement_build(city=shanghai.city, data_center=w.dc, period=NOV)
    client.force_login(shanghai.reviewer)
    assert client.get(f"/shanghai/staff/settlements/{s.pk}/").status_code == 200
    assert client.post(f"/shanghai/staff/settlements/{s.pk}/", {"step": "issue"}).status_code == 404
    assert client.post("/shanghai/staff/settlements/", {"period": "2026-11"}).status_code == 404
    assert Settlement.objects.get(pk=s.pk).status == "draft"
    client.force_login(operator)
    # A draft is the city's working copy: not shown to the data center.
    assert client.get(f"/dc/guian/settlements/{s.pk}/").status_code == 404
    settlement_issue(settlement=s, actor=shanghai.manager)
    assert client.get(f"/dc/guian/settlements/{s.pk}/").status_code == 200
    stranger = UserFactory()
    w.other_dc.operators.add(stranger)
    client.force_login(stranger)
    assert client.get(f"/dc/guian/settlements/{s.pk}/").status_code == 404
    assert client.get(f"/dc/zhongwei/settlements/{s.pk}/").status_code == 404
    assert client.get(f"/dc/zhongwei/settlements/{s.pk}/csv/").status_code == 404


def test_list_queries_do_not_grow_with_statements(
    client, november, shanghai, operator, django_assert_max_num_queries
):
    for month in range(1, 11):
        period = date(2026, month, 1)
        settlement_issue(
            settlement=settlement_build(city=shanghai.city, data_center=november.dc, period=period),
            actor=shanghai.manager,
        )
    client.force_login(shanghai.manager)
    with django_assert_max_num_queries(12):
        page = client.get("/shanghai/staff/settlements/?status=issued&data_center=guian")
    assert page.status_code == 200
    assert page.content.count(b"/shanghai/staff/settlements/") >= 10
    client.force_login(operator)
    with django_assert_max_num_queries(12):
        assert client.get("/dc/guian/settlements/?period=2026-03").status_code == 200


def csv_of(s, language: str) -> list[list[str]]:
    import csv
    import io

    from django.utils import translation

    with translation.override(language):
        raw = statement_csv(s)
    assert raw.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))


def test_csv_rows_and_pdf_period(november, shanghai):
    """The statement's CSV in the reader's language (issue #14): the headers, the city
    and the data center names, the status and the lines' kind were English codes and
    Chinese names whatever the language."""
    import io

    s = settlement_build(city=shanghai.city, data_center=november.dc, period=NOV)
    city, dc = s.city, s.data_center
    assert city.name_zh != city.name_en and dc.name_zh != dc.name_en
    zh = csv_of(s, "zh-hans")
    assert zh[:3] == [
        ["城市", "数据中心", "结算期", "状态"],
        [city.name_zh, dc.name_zh, "2026-11", "草稿"],
        [],
    ]
    assert zh[3] == ["类型", "记录", "算力券", "金额", "抵扣"]
    assert [r[0] for r in zh[4:-1]] == ["用量"] * 5
    assert zh[4][1:3] == [s.lines.order_by("id")[0].record_id, november.voucher.code]
    assert zh[-1] == ["合计", "5", "", "510.00", "153.00"]
    en = csv_of(s, "en")
    assert en[:3] == [
        ["City", "Data center", "Period", "Status"],
        [city.name_en, dc.name_en, "2026-11", "Draft"],
        [],
    ]
    assert en[3] == ["Kind", "Record", "Voucher", "Amount", "Covered"]
    assert [r[0] for r in en[4:-1]] == ["Usage"] * 5
    assert en[4:-1] == [["Usage", *r[1:]] for r in zh[4:-1]]
    assert en[-1] == ["Total", "5", "", "510.00", "153.00"]
    import pypdf

    pdf_text = pypdf.PdfReader(io.BytesIO(statement_pdf(s))).pages[0].extract_text()
    assert "2026-11" in pdf_text


def test_csv_neutralises_formulas_and_keeps_negative_amounts_numbers(november, shanghai):
    """A record id is the data center's text: one a spreadsheet would run as a formula
    gets a leading quote; a negative amount (an adjustment) stays a number."""
    s = settlement_build(city=shanghai.city, data_center=november.dc, period=NOV)
    first, second = s.lines.order_by("id")[:2]
    s.lines.filter(pk=first.pk).update(record_id='=HYPERLINK("http://x")')
    s.lines.filter(pk=second.pk).update(amount=Decimal("-12.5"), covered_amount=Decimal("-3"))
    rows = csv_of(s, "en")
    assert rows[4][1] == '\'=HYPERLINK("http://x")'
    assert rows[5][3:] == ["-12.50", "-3.00"]


def test_the_beat_task_drafts_last_month(november, shanghai):
    import time_machine

    from compute.tasks import settlements_monthly
    from portal.settings import CELERY_BEAT_SCHEDULE

    assert any(
        e["task"] == "compute.tasks.settlements_monthly" for e in CELERY_BEAT_SCHEDULE.values()
    )
    with time_machine.travel(date(2026, 12, 1), tick=False):
        assert settlements_monthly.delay().get() == 2
    s = Settlement.objects.get(data_center=november.dc, period=NOV)
    assert (s.status, s.records) == ("draft", 5)


def test_usage_arriving_after_its_month_was_issued_is_billed_next(
    november, shanghai, django_capture_on_commit_callbacks
):
    w = november
    nov = settlement_build(city=shanghai.city, data_center=w.dc, period=NOV)
    settlement_issue(settlement=nov, actor=shanghai.manager)
    late = record(7, w.voucher.code, amount="50.00")  # ends in November, pushed now
    push(w, [late], django_capture_on_commit_callbacks)
    assert UsageRecord.objects.filter(record_id=late["record_id"]).exists()
    nov.refresh_from_db()
    assert nov.records == 5
    dec = settlement_build(city=shanghai.city, data_center=w.dc, period=DEC)
    assert set(dec.lines.values_list("record_id", flat=True)) == {
        late["record_id"],
        "dc-2026-11-000009",
    }
    # Billed once: the next month's statement does not take it again.
    assert not settlement_build(
        city=shanghai.city, data_center=w.dc, period=date(2027, 1, 1)
    ).records


def test_building_a_month_skips_statements_already_issued(november, shanghai):
    w = november
    s = settlement_build(city=shanghai.city, data_center=w.dc, period=NOV)
    settlement_issue(settlement=s, actor=shanghai.manager)
    built = settlements_build_month(period=NOV)
    assert [(x.city.slug, x.data_center.slug) for x in built] == [("shenzhen", "zhongwei")]
    assert settlements_build_month(period=NOV, city=shanghai.city) == []


def test_the_pdf_pages_long_statements_and_ends_with_signatures(
    ledger_world, shanghai, django_capture_on_commit_callbacks
):
    w = ledger_world
    push(
        w,
        [record(i, w.voucher.code, amount="1.00") for i in range(130)],
        django_capture_on_commit_callbacks,
    )
    s = settlement_build(city=shanghai.city, data_center=w.dc, period=NOV)
    assert s.records == 130
    pdf = statement_pdf(s)
    assert pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page ") >= 3


def test_api_pages_statements_and_explains_a_bad_period(november, shanghai):
    w = november
    for month in (9, 10, 11):
        settlement_issue(
            settlement=settlement_build(
                city=shanghai.city, data_center=w.dc, period=date(2026, month, 1)
            ),
            actor=shanghai.manager,
        )
    first = w.api.get("/api/v1/settlements?limit=2").json()
    assert [r["period"] for r in first["results"]] == ["2026-11", "2026-10"]
    second = w.api.get(first["next"]).json()
    assert ([r["period"] for r in second["results"]], second["next"]) == (["2026-09"], None)
    assert w.other_api.get("/api/v1/settlements").json()["results"] == []
    bad = w.api.get("/api/v1/settlements?period=11-2026")
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid"
    assert "period" in bad.json()["error"]["fields"]
    detail = w.api.get(f"/api/v1/settlements/{first['results'][0]['id']}").json()
    assert detail["lines"][0] == {
        "kind": "usage",
        "record_id": "dc-2026-11-000000",
        "voucher": w.voucher.code,
        "amount": "100.00",
        "covered_amount": "30.00",
    }


def test_pages_offer_only_the_steps_the_table_allows(client, november, shanghai, operator):
    s = settlement_build(city=shanghai.city, data_center=november.dc, period=NOV)
    staff, console = f"/shanghai/staff/settlements/{s.pk}/", f"/dc/guian/settlements/{s.pk}/"
    offered = {
        "draft": ({b'value="issue"', b'value="rebuild"'}, None),
        "issued": (set(), {b'value="confirm"'}),
        "confirmed": ({b'value="mark_paid"'}, set()),
        "paid": (set(), set()),
    }
    steps = [b'value="issue"', b'value="rebuild"', b'value="mark_paid"', b'value="confirm"']
    for status, (city_steps, dc_steps) in offered.items():
        Settlement.objects.filter(pk=s.pk).update(status=status)
        client.force_login(shanghai.manager)
        page = client.get(staff).content
        assert {x for x in steps if x in page} == city_steps, status
        client.force_login(operator)
        response = client.get(console)
        if dc_steps is None:
            assert response.status_code == 404
        else:
            assert {x for x in steps if x in response.content} == dc_steps, status


def test_each_step_is_audited_with_who_took_it(november, shanghai, operator):
    from portal.models import AuditEvent

    s = settlement_build(city=shanghai.city, data_center=november.dc, period=NOV)
    settlement_issue(settlement=s, actor=shanghai.manager)
    settlement_confirm(settlement=s, data_center=november.dc, actor=operator)
    settlement_mark_paid(settlement=s, actor=shanghai.manager, payment_ref="BANK-7")
    events = AuditEvent.objects.filter(city=shanghai.city, action__startswith="settlement.")
    assert [(e.action, e.actor_label) for e in events.order_by("seq")] == [
        ("settlement.issue", shanghai.manager.email),
        ("settlement.confirm", f"{operator.email} (data center guian)"),
        ("settlement.mark_paid", shanghai.manager.email),
    ]
    assert events.first().data["period"] == "2026-11"


@pytest.mark.django_db(transaction=True)
def test_races_issue_once_and_bill_a_late_record_once(november, shanghai):
    w = november
    s = settlement_build(city=shanghai.city, data_center=w.dc, period=NOV)

    def issue():
        settlement_issue(settlement=Settlement.objects.get(pk=s.pk), actor=shanghai.manager)

    assert outcome_codes(race(issue, issue)) == ["conflict", "done"]
    w.api.post("/api/v1/usage/batches", {"records": [record(7, w.voucher.code)]}, format="json")
    late = UsageRecord.objects.get(record_id="dc-2026-11-000007")

    def build(period):
        return lambda: settlement_build(city=shanghai.city, data_center=w.dc, period=period)

    assert outcome_codes(race(build(DEC), build(date(2027, 1, 1)))) == ["done", "done"]
    assert late.settlement_lines.count() == 1
