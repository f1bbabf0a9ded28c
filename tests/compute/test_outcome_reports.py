"""Compute's part of outcome reports: the usage summary broken down by data center and
accelerator (compute.outcome_usage, registered into vouchers.outcome_usage), and the
program dashboard's outcome totals, each equal to sums this test computes itself."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date
from decimal import Decimal

import pytest
from django.urls import reverse

import compute.tasks  # noqa: F401  (registers the apply task; compute.batches asks by name)
from compute.models import UsageRecord
from portal.audit import SYSTEM
from tests.compute.conftest import record
from tests.factories import UserFactory
from tests.vouchers.conftest import make_company
from vouchers import services
from vouchers.credit_code import credit_code_generate
from vouchers.ledger import voucher_issue
from vouchers.models import EntryKind, LedgerEntry, OutcomeReport, Voucher
from vouchers.outcomes import outcome_reports_schedule

pytestmark = pytest.mark.usefixtures("eager_tasks")
BATCHES = "/api/v1/usage/batches"


def _reports_on(program) -> None:
    program.outcome_reports_required = True
    program.save()


def test_the_summary_is_the_vouchers_usage_per_data_center_and_accelerator(
    ledger_world, startup_user, django_capture_on_commit_callbacks
):
    w = ledger_world
    _reports_on(w.program)
    [report] = outcome_reports_schedule(voucher=Voucher.objects.get(pk=w.voucher.pk))
    records = [
        record(1, w.voucher.code, amount="100.00"),
        record(2, w.voucher.code, resource="H800", domestic=False, amount="55.55"),
        record(3, w.voucher.code, amount="10.01", quantity="8.000"),
        record(4, w.voucher.code, amount="7.00", quantity="1.000"),
    ]
    with django_capture_on_commit_callbacks(execute=True):
        assert w.api.post(BATCHES, {"records": records}, format="json").status_code == 202
        # Shenzhen's voucher of the same company: not this report's.
        other = [record(9, w.other_voucher.code)]
        assert w.other_api.post(BATCHES, {"records": other}, format="json").status_code == 202
    void = w.api.post(
        f"/api/v1/usage/records/{records[3]['record_id']}/void", {"reason": "重复"}, format="json"
    )
    assert void.status_code == 200
    services.outcome_report_update(report=report, actor=startup_user, values={"summary": "成果"})
    services.outcome_report_submit(report=report, actor=startup_user)
    report.refresh_from_db()

    expected: dict[tuple[str, str], list[Decimal]] = defaultdict(
        lambda: [Decimal(0), Decimal(0), Decimal(0)]
    )
    for r in UsageRecord.objects.filter(voucher=w.voucher, status="accepted"):
        sums = expected[(w.dc.name_en, r.resource)]
        sums[0] += r.quantity
        sums[1] += r.amount
        sums[2] += r.covered_amount
    assert len(expected) == 2  # Ascend 910B and H800, the void record left out
    got = {
        (line["data_center_en"], line["accelerator"]): [
            Decimal(line["quantity"]),
            Decimal(line["amount"]),
            Decimal(line["covered"]),
        ]
        for line in report.usage_summary["lines"]
    }
    assert got == dict(expected)
    charged = -sum(
        e.amount
        for e in LedgerEntry.objects.filter(
            voucher=w.voucher, kind__in=[EntryKind.CHARGE, EntryKind.REVERSAL]
        )
    )
    assert (
        Decimal(report.usage_summary["charged"]) == charged == sum(v[2] for v in expected.values())
    )


def test_the_program_dashboard_totals_the_outcomes(ledger_world, client, world):
    w = ledger_world
    sh = world["shanghai"]
    _reports_on(w.program)
    rng = random.Random(19)
    expected_states: dict[str, int] = defaultdict(int)
    sums = {"models_trained": 0, "products_launched": 0, "papers_published": 0, "hires": 0}
    largest = None
    for i in range(7):
        user = UserFactory(email=f"founder{i}@outcomes.test")
        company = make_company(
            user, name=f"成果公司{i}", code=credit_code_generate(random.Random(500 + i))
        )
        voucher = voucher_issue(
            program=w.program,
            company=company,
            amount=Decimal("100000"),
            actor=SYSTEM,
            valid_from=date(2026, 1, 1),
        )
        report = OutcomeReport.objects.get(voucher=voucher)
        figures = {
            "models_trained": rng.randint(0, 5),
            "largest_model_parameters": Decimal(rng.choice(["1.5", "7", "13", "70"])),
            "products_launched": rng.randint(0, 3),
            "papers_published": rng.randint(0, 4),
            "hires": rng.randint(0, 20),
            "summary": f"成果 {i}",
        }
        services.outcome_report_update(report=report, actor=user, values=figures)
        end = ["draft", "submitted", "accepted", "returned", "accepted", "accepted", "submitted"][i]
        if end != "draft":
            services.outcome_report_submit(report=report, actor=user)
        if end == "accepted":
            services.outcome_report_accept(report=report, actor=sh.manager)
            for name in sums:
                sums[name] += figures[name]
            size = figures["largest_model_parameters"]
            largest = size if largest is None or size > largest else largest
        if end == "returned":
            services.outcome_report_return(report=report, actor=sh.manager, comment="补充")
        expected_states[end] += 1
    # The ledger world's own voucher, issued before the program asked: no report yet.
    client.force_login(sh.manager)
    url = reverse("compute:program_dashboard", args=["shanghai", w.program.slug])
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    for state in ("draft", "submitted", "returned", "accepted"):
        assert f'data-figure="outcome-{state}">{expected_states[state]}<' in html
    for name, figure in (
        ("models_trained", "models-trained"),
        ("products_launched", "products-launched"),
        ("papers_published", "papers-published"),
        ("hires", "hires"),
    ):
        assert f'data-figure="{figure}">{sums[name]}<' in html
    largest = largest.quantize(Decimal("0.01"))  # as stored: billions, two places
    assert f'data-figure="largest-model">{largest}<' in html
    json_url = reverse("compute:program_dashboard_json", args=["shanghai", w.program.slug])
    data = client.get(json_url).json()["outcomes"]
    assert data["accepted"] == expected_states["accepted"] == 3
    assert {k: data[k] for k in sums} == sums
    assert data["largest_model_parameters"] == str(largest)
    assert data["by_state"]["resubmitted"] == 0
    # Another city's program managers: a 404, as every dashboard.
    client.force_login(world["shenzhen"].manager)
    assert client.get(url).status_code == 404
