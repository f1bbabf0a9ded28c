"""The world of the outcome-report tests: a Shanghai program asking for a final report
30 days after each voucher ends and a mid-term one after six months, the startup's
voucher of it (2026), and its reports."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from portal.audit import SYSTEM
from tests.vouchers.conftest import make_program
from vouchers import services
from vouchers.ledger import voucher_issue
from vouchers.models import (
    OutcomeReport,
    OutcomeState,
)

S = OutcomeState
START = date(2026, 1, 1)  # the voucher's first day; 12 months: last day 2026-12-31
FINAL_DUE = date(2027, 1, 30)  # 30 days after the last day
MIDTERM_DUE = date(2026, 7, 1)  # 6 months after the first


@pytest.fixture
def program(shanghai):
    return make_program(
        shanghai.city,
        outcome_reports_required=True,
        outcome_final_days=30,
        outcome_midterm_months=6,
    )


@pytest.fixture
def voucher(program, company, shanghai):
    return voucher_issue(
        program=program,
        company=company,
        amount=Decimal("500000.00"),
        actor=SYSTEM,
        valid_from=START,
    )


@pytest.fixture
def final(voucher) -> OutcomeReport:
    return OutcomeReport.objects.get(voucher=voucher, stage="final")


def filled(report: OutcomeReport, user) -> OutcomeReport:
    return services.outcome_report_update(
        report=report,
        actor=user,
        values={
            "models_trained": 2,
            "largest_model_parameters": Decimal("7"),
            "benchmarks": "C-Eval 71.2",
            "products_launched": 1,
            "papers_published": 3,
            "hires": 5,
            "summary": "训练并上线了 70 亿参数模型。",
        },
    )
