"""The outcome-report forms (vouchers/views/outcomes.py): the company's report and its
documents, the program manager's decision, and the queue's filters."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import strategies as st

from portal.audit import SYSTEM
from tests.portal.fuzz.catalogue import Form, Step, fixture, form
from tests.portal.fuzz.values import Field, choice, nasty_text, number, text, uploads
from tests.vouchers.conftest import make_program
from vouchers import services
from vouchers.ledger import voucher_issue
from vouchers.models import OutcomeReport


def _report(request, *, submitted: bool = False) -> OutcomeReport:
    shanghai, user = fixture(request, "shanghai"), fixture(request, "startup_user")
    program = make_program(shanghai.city, slug="outcomes", outcome_reports_required=True)
    voucher = voucher_issue(
        program=program,
        company=fixture(request, "company"),
        amount=Decimal("100000"),
        actor=SYSTEM,
    )
    report = OutcomeReport.objects.get(voucher=voucher)
    if submitted:
        services.outcome_report_update(report=report, actor=user, values={"summary": "成果"})
        services.outcome_report_submit(report=report, actor=user)
    return report


@form("outcome report")
def _(request):
    report = _report(request)
    user = fixture(request, "startup_user")
    shanghai = fixture(request, "shanghai")
    return Form(
        user,
        f"/company/outcomes/{report.pk}/",
        {
            "models_trained": number(0, 10_000),
            "largest_model_parameters": number(0, Decimal("100000"), places=2),
            "benchmarks": text("C-Eval 70", ""),
            "products_launched": number(0, 10_000),
            "papers_published": number(0, 10_000),
            "hires": number(0, 1_000_000),
            "summary": text("训练了一个模型。", ""),
            "go": choice("save", "submit"),
        },
        then=[
            Step(user, f"/company/outcomes/{report.pk}/"),
            Step(user, "/company/outcomes/"),
            Step(user, "/company/"),
            Step(shanghai.manager, f"/shanghai/staff/outcomes/{report.pk}/"),
            Step(shanghai.manager, "/shanghai/staff/outcomes/"),
            Step(shanghai.manager, "/shanghai/staff/programs/outcomes/dashboard/"),
        ],
    )


@form("outcome report documents")
def _(request):
    report = _report(request)
    user = fixture(request, "startup_user")
    return Form(
        user,
        f"/company/outcomes/{report.pk}/documents/",
        {
            "doc_type": choice("outcome_report", "paper", "other"),
            "file": Field(uploads, st.one_of(uploads, nasty_text)),
        },
        then=[Step(user, f"/company/outcomes/{report.pk}/")],
    )


@form("outcome report decision")
def _(request):
    report = _report(request, submitted=True)
    shanghai = fixture(request, "shanghai")
    return Form(
        shanghai.manager,
        "/shanghai/staff/outcomes/{pk}/do/{action}/",
        {"comment": text("请补充。", "")},
        path_fields={
            "pk": Field(st.just(report.pk), nasty_text),
            "action": choice("accept", "return"),
        },
        then=[
            Step(shanghai.manager, f"/shanghai/staff/outcomes/{report.pk}/"),
            Step(fixture(request, "startup_user"), f"/company/outcomes/{report.pk}/"),
        ],
    )


@form("outcome queue filters")
def _(request):
    _report(request, submitted=True)
    shanghai = fixture(request, "shanghai")
    return Form(
        shanghai.auditor,
        "/shanghai/staff/outcomes/",
        {
            "show": choice("", "waiting", "overdue"),
            "state": choice("", "draft", "submitted", "accepted"),
            "program": number(0, 100),
            "page": number(1, 3),
        },
        method="get",
    )
