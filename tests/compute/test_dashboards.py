"""The dashboards (compute/views/dashboards.py): every figure, on the page and in its JSON,
equals a sum this test computes itself from the rows it created (ledger entries, usage
records, applications, batches' results); other tenants get a 404 everywhere; the query
counts stay the same when the data grows; the rollups agree with the records."""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.cache.backends.dummy import DummyCache
from django.db import connection
from django.test.utils import CaptureQueriesContext

import compute.tasks  # noqa: F401  (registers the apply task; compute.batches asks by name)
from compute import dashboards
from compute.models import (
    ProgramUsageDay,
    RecordStatus,
    Redemption,
    RedemptionStatus,
    UsageBatch,
    UsageRecord,
)
from compute.rollups import rollups_rebuild, rollups_verify
from compute.settlements import settlement_build
from portal.templatetags.money import format_yuan
from tests.compute.conftest import record
from tests.factories import UserFactory
from tests.vouchers.conftest import make_company
from vouchers.ledger import voucher_issue, voucher_revoke
from vouchers.models import Application, ApplicationState, EntryKind, LedgerEntry, Voucher

pytestmark = pytest.mark.usefixtures("eager_tasks")

BATCHES = "/api/v1/usage/batches"
SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)


def push(w, records, capture, api=None):
    with capture(execute=True):
        response = (api or w.api).post(BATCHES, {"records": records}, format="json")
    assert response.status_code == 202
    assert UsageBatch.objects.get(pk=response.json()["id"]).status == "done"


def rec(n: int, voucher: str, day: int, *, hour: int = 10, **fields) -> dict:
    ended = f"2026-11-{day:02d}T{hour:02d}:30:00+08:00"
    started = f"2026-11-{day:02d}T{hour - 1:02d}:30:00+08:00"
    return record(n, voucher, started_at=started, ended_at=ended, **fields)


@pytest.fixture
def dash(ledger_world, django_capture_on_commit_callbacks, startup_user, world):
    """Usage on two vouchers of two companies over several days, domestic and other chips
    and two accelerators, a duplicate and rejections, a voided record, a revoked voucher
    and decided applications."""
    w = ledger_world
    sh = world["shanghai"]
    with time_machine.travel(NOW, tick=False):
        rival_user = UserFactory(email="founder@rival.test")
        rival = make_company(rival_user, name="对手科技", code="91310000MA1FL8TQ3Y")
        rival_voucher = voucher_issue(
            program=w.program,
            company=rival,
            amount=Decimal("400000.00"),
            actor=sh.approver,
            valid_from=date(2026, 11, 1),
        )
        Redemption.objects.create(
            voucher=rival_voucher,
            data_center=w.dc,
            contract_ref="GA-2026-002",
            status=RedemptionStatus.ACTIVE,
        )
        spare = voucher_issue(
            program=w.program,
            company=rival,
            amount=Decimal("150000.00"),
            actor=sh.approver,
            valid_from=date(2026, 11, 1),
        )
        voucher_revoke(voucher=spare, actor=sh.manager, reason="项目终止")
        code, rival_code = w.voucher.code, rival_voucher.code
        push(
            w,
            [
                rec(1, code, 2, amount="100.00"),
                rec(2, code, 2, hour=23, resource="H800", domestic=False, amount="55.55"),
                rec(3, code, 9, amount="10.01"),
                rec(4, rival_code, 9, amount="300.00"),
                rec(5, rival_code, 16, resource="H800", domestic=False, amount="1000.00"),
                rec(6, "NO-SUCH-CODE", 9),
                rec(7, w.other_voucher.code, 9),  # another city's voucher: unknown here
            ],
            django_capture_on_commit_callbacks,
        )
        push(
            w,
            [rec(1, code, 2, amount="100.00"), rec(8, code, 18, amount="2000.00")],
            django_capture_on_commit_callbacks,
        )
        void = w.api.post(
            f"/api/v1/usage/records/{rec(3, code, 9)['record_id']}/void",
            {"reason": "重复"},
            format="json",
        )
        assert void.status_code == 200
        # Shenzhen's usage, which no Shanghai figure may include.
        push(w, [rec(9, w.other_voucher.code, 10)], django_capture_on_commit_callbacks, w.other_api)
        for k, (submitted, decided, state) in enumerate(
            [
                (datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 9, 11, tzinfo=UTC), "approved"),
                (datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 9, 4, tzinfo=UTC), "rejected"),
                (datetime(2026, 9, 2, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC), "approved"),
                (datetime(2026, 9, 3, tzinfo=UTC), None, "in_review"),
                (None, None, "draft"),
            ]
        ):
            Application.objects.create(
                city=sh.city,
                program=w.program,
                company=rival,
                created_by=rival_user,
                state=state,
                title=f"P{k}",
                submitted_at=submitted,
                decided_at=decided,
            )
    w.rival_user, w.rival_voucher, w.spare = rival_user, rival_voucher, spare
    return w


def _program_vouchers(w):
    return Voucher.objects.filter(program=w.program)


def _entries(w, *kinds):
    return LedgerEntry.objects.filter(voucher__in=_program_vouchers(w), kind__in=kinds)


def _expected_budget(w) -> dict[str, Decimal]:
    w.program.refresh_from_db()
    committed = sum(e.amount for e in _entries(w, EntryKind.ISSUE))
    spent = -sum(e.amount for e in _entries(w, EntryKind.CHARGE, EntryKind.REVERSAL))
    returned = -sum(e.amount for e in _entries(w, EntryKind.EXPIRE, EntryKind.REVOKE))
    return {
        "budget": w.program.budget,
        "committed": committed,
        "spent": spent,
        "returned": returned,
        "left": w.program.budget - committed + returned,
    }


def _records(**filters):
    return UsageRecord.objects.filter(status=RecordStatus.ACCEPTED, **filters)


def _program_url(w, suffix="dashboard/"):
    return f"/{w.program.city.slug}/staff/programs/{w.program.slug}/{suffix}"


def _chart(payload, chart_id):
    return next(c for c in payload["charts"] if c["id"] == chart_id)


def test_program_budget_figures_equal_the_ledger(dash, client, world):
    expected = _expected_budget(dash)
    assert expected["spent"] == Decimal("30.00") + Decimal("11.11") + Decimal("90.00") + Decimal(
        "200.00"
    ) + Decimal("600.00")  # the rates' shares, the voided record out
    assert expected["returned"] == Decimal("150000.00")
    client.force_login(world["shanghai"].auditor)
    page = client.get(_program_url(dash))
    assert page.status_code == 200
    html = page.content.decode()
    for name, value in expected.items():
        assert f'data-figure="{name}">{format_yuan(value)}<' in html
    data = client.get(_program_url(dash, "dashboard.json")).json()
    assert {k: Decimal(v) for k, v in data["budget"].items()} == expected
    budget_chart = _chart(data, "budget")
    assert [Decimal(v) for v in budget_chart["series"][0]["data"]] == list(expected.values())


def test_program_usage_over_time_by_data_center_and_chips(dash, client, world):
    by_week_dc: dict = defaultdict(Decimal)
    by_week_chips: dict = defaultdict(Decimal)
    for r in _records(voucher__program=dash.program):
        day = r.ended_at.astimezone(SHANGHAI).date()
        week = day - timedelta(days=day.weekday())
        by_week_dc[(week, r.data_center_id)] += r.covered_amount
        by_week_chips[(week, r.domestic)] += r.covered_amount
    weeks = sorted({k[0] for k in by_week_dc})
    client.force_login(world["shanghai"].manager)
    data = client.get(_program_url(dash, "dashboard.json?period=week")).json()
    usage = _chart(data, "usage-dc")
    assert len(usage["categories"]) == len(weeks) == 3
    (series,) = usage["series"]
    assert series["name"] == dash.dc.name
    assert [Decimal(v) for v in series["data"]] == [by_week_dc[(w, dash.dc.pk)] for w in weeks]
    chips = _chart(data, "usage-chips")
    assert [Decimal(v) for v in chips["series"][0]["data"]] == [
        by_week_chips[(w, True)] for w in weeks
    ]
    assert [Decimal(v) for v in chips["series"][1]["data"]] == [
        by_week_chips[(w, False)] for w in weeks
    ]
    by_day = client.get(_program_url(dash, "dashboard.json?period=day")).json()
    days = {r.ended_at.astimezone(SHANGHAI).date() for r in _records(voucher__program=dash.program)}
    assert len(_chart(by_day, "usage-dc")["categories"]) == len(days)
    by_month = client.get(_program_url(dash, "dashboard.json?period=month")).json()
    assert _chart(by_month, "usage-dc")["categories"] == ["2026-11"]
    # The page's table view shows the same numbers.
    html = client.get(_program_url(dash) + "?period=week").content.decode()
    for w in weeks:
        assert format_yuan(by_week_dc[(w, dash.dc.pk)]) in html


def test_program_funnel_bands_top_companies_and_decision_times(dash, client, world):
    client.force_login(world["shanghai"].approver)
    data = client.get(_program_url(dash, "dashboard.json")).json()
    states = Counter(
        Application.objects.filter(program=dash.program).values_list("state", flat=True)
    )
    funnel = _chart(data, "funnel")
    assert sum(int(v) for v in funnel["series"][0]["data"]) == sum(states.values()) == 5
    order = [state.value for state in ApplicationState]
    assert [int(v) for v in funnel["series"][0]["data"]] == [states.get(s, 0) for s in order]
    bands = [int(v) for v in _chart(data, "bands")["series"][0]["data"]]
    faces = list(_program_vouchers(dash).values_list("face_value", flat=True))
    edges = [0, 100_000, 300_000, 500_000, 1_000_000, 2_000_000, 5_000_000, math.inf]
    assert bands == [sum(1 for f in faces if lo <= f < hi) for lo, hi in itertools.pairwise(edges)]
    spend: dict = defaultdict(Decimal)
    for r in _records(voucher__program=dash.program).select_related("voucher__company"):
        spend[r.voucher.company.legal_name] += r.covered_amount
    top = _chart(data, "top-companies")
    ranked = sorted(spend.items(), key=lambda kv: -kv[1])
    assert top["categories"] == [name for name, _v in ranked]
    assert [Decimal(v) for v in top["series"][0]["data"]] == [v for _n, v in ranked]
    # percentile_cont: linear interpolation between the sorted values.
    waits = sorted(
        (a.decided_at - a.submitted_at).total_seconds() / 86400
        for a in Application.objects.filter(program=dash.program, decided_at__isnull=False)
    )
    assert waits == [3.0, 10.0, 30.0]
    position = 0.9 * (len(waits) - 1)
    p90 = waits[int(position)] + (waits[int(position) + 1] - waits[int(position)]) * (
        position - int(position)
    )
    assert data["decision_days"] == {"decided": 3, "median": "10.0", "p90": f"{p90:.1f}"}


def test_company_dashboard_balance_burn_down_and_run_out(dash, client, startup_user):
    voucher = Voucher.objects.get(pk=dash.voucher.pk)
    ledger_balance = sum(e.amount for e in LedgerEntry.objects.filter(voucher=voucher))
    assert voucher.balance == ledger_balance
    covered = {r.record_id: r.covered_amount for r in _records(voucher=voucher)}
    spent = sum(covered.values())
    client.force_login(startup_user)
    today = date(2026, 11, 20)
    with time_machine.travel(NOW, tick=False):
        html = client.get("/my/dashboard/").content.decode()
        data = client.get(f"/my/vouchers/{voucher.code}/usage.json").json()
    assert data["balance"] == str(ledger_balance)
    assert Decimal(data["spent"]) == spent == voucher.face_value - ledger_balance
    rate = (spent / 30).quantize(Decimal("0.01"))
    assert Decimal(data["daily_rate"]) == rate
    runs_out = today + timedelta(days=math.ceil(ledger_balance / rate))
    assert data["runs_out_on"] == runs_out.isoformat()
    assert runs_out.isoformat() in html and format_yuan(ledger_balance) in html
    # The burn-down: face value less each day's usage, cumulated.
    per_day: dict = defaultdict(Decimal)
    for r in _records(voucher=voucher):
        per_day[r.ended_at.astimezone(SHANGHAI).date()] += r.covered_amount
    remaining, expected = voucher.face_value, []
    for day in sorted(per_day):
        remaining -= per_day[day]
        expected.append(remaining)
    (burn,) = data["charts"]
    assert burn["categories"] == [d.isoformat() for d in sorted(per_day)]
    assert [Decimal(v) for v in burn["series"][0]["data"]] == expected
    # Per day by data center and accelerator: one row per (day, data center, accelerator).
    rows: dict = defaultdict(lambda: [0, Decimal(0)])
    for r in _records(voucher=voucher):
        key = (r.ended_at.astimezone(SHANGHAI).date().isoformat(), r.resource)
        rows[key][0] += 1
        rows[key][1] += r.covered_amount
    assert {
        (u["day"], u["resource"]): [u["records"], Decimal(u["covered"])] for u in data["usage"]
    } == {k: v for k, v in rows.items()}
    assert data["months"] == [
        {
            "month": "2026-11",
            "records": len(covered),
            "amount": str(sum(r.amount for r in _records(voucher=voucher))),
            "covered": str(spent),
        }
    ]
    # The rival's voucher is not on this company's dashboard.
    assert dash.rival_voucher.code not in html


def test_data_center_dashboard_outcomes_cities_and_settlements(dash, client, operator):
    outcomes: Counter = Counter()
    for batch in UsageBatch.objects.filter(data_center=dash.dc):
        for result in json.loads(batch.results_json):
            outcomes[result["error"]["code"] if result["error"] else result["status"]] += 1
    assert outcomes == {"accepted": 6, "duplicate": 1, "unknown_voucher": 2}
    client.force_login(operator)
    city = dash.program.city
    statement = settlement_build(city=city, data_center=dash.dc, period=date(2026, 11, 1))
    data = client.get(f"/dc/{dash.dc.slug}/dashboard.json?period=day").json()
    (chart,) = data["charts"]
    # Accepted, duplicates, then each rejection code.
    assert [sum(int(v) for v in s["data"]) for s in chart["series"]] == [6, 1, 2]
    assert "unknown_voucher" in chart["series"][2]["name"]
    covered = sum(r.covered_amount for r in _records(data_center=dash.dc))
    assert data["cities"] == [
        {
            "city": dash.program.city.slug,
            "records": _records(data_center=dash.dc).count(),
            "covered": str(covered),
        }
    ]
    november = sum(
        r.covered_amount
        for r in _records(data_center=dash.dc, voucher__city=city)
        if r.ended_at.astimezone(SHANGHAI).month == 11
    )
    assert statement.covered_total == november
    assert data["settlements"] == [
        {"status": "draft", "statements": 1, "covered": str(november)},
        {"status": "issued", "statements": 0, "covered": "0.00"},
        {"status": "confirmed", "statements": 0, "covered": "0.00"},
        {"status": "paid", "statements": 0, "covered": "0.00"},
    ]
    page = client.get(f"/dc/{dash.dc.slug}/dashboard/")
    assert format_yuan(covered) in page.content.decode()


def test_platform_overview_sets_the_cities_side_by_side(dash, client, world):
    admin = UserFactory(email="root@platform.test", is_superuser=True, is_staff=True)
    client.force_login(admin)
    data = client.get("/staff/overview.json").json()
    by_city = {c["city"]: c for c in data["cities"]}
    for slug in ("shanghai", "shenzhen"):
        city = world[slug].city
        vouchers = Voucher.objects.filter(city=city)
        issued = sum(
            e.amount for e in LedgerEntry.objects.filter(voucher__in=vouchers, kind=EntryKind.ISSUE)
        )
        spent = -sum(
            e.amount
            for e in LedgerEntry.objects.filter(
                voucher__in=vouchers, kind__in=[EntryKind.CHARGE, EntryKind.REVERSAL]
            )
        )
        assert Decimal(by_city[slug]["committed"]) == issued
        assert Decimal(by_city[slug]["spent"]) == spent
        assert by_city[slug]["vouchers"] == vouchers.count()
        assert by_city[slug]["applications"] == Application.objects.filter(city=city).count()
        assert by_city[slug]["data_centers"] == 1
    assert client.get("/staff/overview/").status_code == 200


def test_other_tenants_get_404_everywhere(dash, client, world, startup_user, operator):
    sz = world["shenzhen"]
    for url in (
        _program_url(dash),
        _program_url(dash, "dashboard.json"),
        f"/{dash.program.city.slug}/staff/dashboards/",
    ):
        client.force_login(sz.manager)
        assert client.get(url).status_code == 404, url
    client.force_login(world["shanghai"].reviewer)  # a role here, but not one that may see it
    assert client.get(_program_url(dash)).status_code == 403
    client.force_login(dash.rival_user)
    assert client.get(f"/my/vouchers/{dash.voucher.code}/usage.json").status_code == 404
    client.force_login(startup_user)
    assert client.get(f"/my/vouchers/{dash.rival_voucher.code}/usage.json").status_code == 404
    other_operator = UserFactory(email="ops@zhongwei.test")
    dash.other_dc.operators.add(other_operator)
    client.force_login(other_operator)
    for url in (f"/dc/{dash.dc.slug}/dashboard/", f"/dc/{dash.dc.slug}/dashboard.json"):
        assert client.get(url).status_code == 404, url
    for user in (world["shanghai"].manager, operator, startup_user):
        client.force_login(user)
        assert client.get("/staff/overview/").status_code == 404
        assert client.get("/staff/overview.json").status_code == 404


def _count(client, url) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_query_counts_do_not_grow_with_the_data(
    dash, client, world, operator, startup_user, django_capture_on_commit_callbacks, monkeypatch
):
    # Counted with the decision times never cached (every request the worst case).
    monkeypatch.setattr(dashboards, "cache", DummyCache("none", {}))
    admin = UserFactory(email="root@platform.test", is_superuser=True, is_staff=True)
    pages = [
        # The program's pages: one more each for the outcome reports' totals.
        (world["shanghai"].manager, _program_url(dash), 16),
        (world["shanghai"].manager, _program_url(dash, "dashboard.json"), 14),
        (world["shanghai"].manager, f"/{dash.program.city.slug}/staff/dashboards/", 12),
        (startup_user, "/my/dashboard/", 10),
        (startup_user, f"/my/vouchers/{dash.voucher.code}/usage.json", 8),
        (operator, f"/dc/{dash.dc.slug}/dashboard/", 12),
        (operator, f"/dc/{dash.dc.slug}/dashboard.json", 10),
        (admin, "/staff/overview/", 12),
        (admin, "/staff/overview.json", 10),
    ]
    before = []
    for user, url, pinned in pages:
        client.force_login(user)
        n = _count(client, url)
        assert n <= pinned, (url, n)
        before.append(n)
    with time_machine.travel(NOW, tick=False):
        push(
            dash,
            [rec(100 + k, dash.voucher.code, 3 + k % 15, amount="1.00") for k in range(60)]
            + [rec(200 + k, "NOPE", 4) for k in range(5)],
            django_capture_on_commit_callbacks,
        )
    after = []
    for user, url, _pinned in pages:
        client.force_login(user)
        after.append(_count(client, url))
    assert after == before


def test_rollups_agree_with_the_records_and_find_a_difference(dash):
    assert rollups_verify() == []
    assert ProgramUsageDay.objects.exists()
    ProgramUsageDay.objects.filter(pk=ProgramUsageDay.objects.order_by("pk").first().pk).update(
        covered=Decimal("1.00")
    )
    problems = rollups_verify()
    assert len(problems) == 1 and problems[0].startswith("compute_programusageday (")
    rollups_rebuild()
    assert rollups_verify() == []


def test_rollups_take_the_amounts_settled_under_the_locks(
    ledger_world, django_capture_on_commit_callbacks
):
    """A batch whose shares pass the balance is settled record by record (covered =
    what is left); the rollups add what was settled, not what was planned."""
    w = ledger_world
    with time_machine.travel(NOW, tick=False):
        push(
            w,
            [rec(k, w.voucher.code, 3 + k, amount="2000.00") for k in range(1, 4)],
            django_capture_on_commit_callbacks,
        )
    charged = -sum(e.amount for e in LedgerEntry.objects.filter(kind=EntryKind.CHARGE))
    assert charged == Decimal("1000.00")  # 600 + 400 + 0 of 1,800 planned
    assert sum(p.covered for p in ProgramUsageDay.objects.all()) == charged
    assert sum(p.records for p in ProgramUsageDay.objects.all()) == 3
    assert rollups_verify() == []


def test_left_to_award_leaves_out_what_awards_awaiting_acceptance_hold(dash, client, world):
    from django.db import transaction

    from vouchers.ledger import award_reserve

    with transaction.atomic():
        award_reserve(program=dash.program, amount=Decimal("250000.00"))
    expected = _expected_budget(dash)
    client.force_login(world["shanghai"].manager)
    data = client.get(_program_url(dash, "dashboard.json")).json()
    assert Decimal(data["budget"]["left"]) == expected["left"] - Decimal("250000.00")


def test_decision_times_are_cached_until_an_application_changes(dash, client, world):
    """The percentiles are cached under the program's change counter: a second request
    reads them from the cache (one query fewer), and a decision made since is in the
    next figure, not a stale one."""
    client.force_login(world["shanghai"].approver)
    url = _program_url(dash, "dashboard.json")
    first = client.get(url).json()["decision_days"]
    with CaptureQueriesContext(connection) as cached:
        assert client.get(url).json()["decision_days"] == first
    assert not any("percentile_cont" in q["sql"] for q in cached.captured_queries)
    undecided = Application.objects.filter(program=dash.program, decided_at__isnull=True)
    app = undecided.exclude(submitted_at=None).first()
    Application.objects.filter(pk=app.pk).update(decided_at=app.submitted_at + timedelta(days=100))
    again = client.get(url).json()["decision_days"]
    assert again["decided"] == first["decided"] + 1
    assert again != first
