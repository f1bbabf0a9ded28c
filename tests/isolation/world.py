"""The world: city A (Shanghai) with company A and data center X, city B (Shenzhen) with
company B, data center Y and every kind of object the routes name."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction

from compute.ingest import BatchBody, usage_batch_receive
from compute.ingest.apply import usage_batch_apply
from compute.integrity.models import FindingRule, Severity
from compute.integrity.services import FindingDraft, findings_raise, related_party_add
from compute.models import Redemption, RedemptionStatus, Registration, UsageRecord
from compute.services import api_key_issue
from compute.settlements import (
    previous_month,
    settlement_build,
    settlement_issue,
)
from compute.webhooks.models import WebhookDelivery, WebhookEvent
from compute.webhooks.services import endpoint_create
from portal.audit import SYSTEM
from portal.models import CityMembership
from portal.services import membership_invite
from tests.compute.conftest import record
from tests.factories import DataCenterFactory, UserFactory
from tests.vouchers.conftest import (
    PDF,
    RUBRIC,
    complete_draft,
    into_review,
    program_values,
    review_by,
)
from vouchers import services
from vouchers.credit_code import credit_code_generate
from vouchers.ledger import voucher_issue
from vouchers.letters import letter_issue
from vouchers.models import LetterKind, OutcomeReport

# --- the world ----------------------------------------------------------------------------


@dataclass
class Value:
    text: str
    foreign: bool | None  # True: B's or Y's; False: the principal's own scope; None: neutral


@dataclass
class World:
    a_slug: str
    b_slug: str
    x_slug: str
    y_slug: str
    program_slugs_b: list[str]
    ids: dict[str, list[int]]  # kind -> B's / Y's pks
    voucher_codes: list[str]
    tokens: list[str]
    record_ids: list[str]
    markers: dict[str, str]
    web_body: dict[str, Any]
    api_body: dict[str, Any]
    query: str  # a search aimed at B, for pages without object kwargs
    y_key: str
    x_key: str
    extra: dict[str, Any] = field(default_factory=dict)


def _money(amount: Decimal) -> list[str]:
    amount = Decimal(amount).quantize(Decimal("0.01"))
    return [f"{amount:,.2f}", f"{amount}"]


def _build_world(shanghai, shenzhen, startup_user, company_a, program_a) -> World:
    sz, sh = shenzhen, shanghai
    period = previous_month()
    tz = ZoneInfo("Asia/Shanghai")

    # City A: company A's own application, data center X with an operator and a key, and
    # a voucher of company A redeemed at X (so A's and X's own lists are not empty).
    complete_draft(program_a, company_a, startup_user)
    dc_x = DataCenterFactory(slug="matrix-x", name_zh="矩阵甲中心", name_en="Matrix X")
    dc_x.programs.add(program_a)
    Registration.objects.create(city=sh.city, data_center=dc_x, starts_on=date(2020, 1, 1))
    operator_x = UserFactory(email="ops@matrix-x.test")
    dc_x.operators.add(operator_x)
    _k, x_key = api_key_issue(data_center=dc_x, actor=SYSTEM)
    voucher_a = voucher_issue(
        program=program_a,
        company=company_a,
        amount=Decimal("150000.00"),
        actor=sh.approver,
        valid_from=period,
    )
    Redemption.objects.create(
        voucher=voucher_a,
        data_center=dc_x,
        contract_ref="X-OWN-001",
        status=RedemptionStatus.ACTIVE,
        requested_by=startup_user,
    )

    # City B: a program with reviews and public notice.
    program_b = services.program_save(
        city=sz.city,
        actor=sz.manager,
        values=program_values(
            slug="zqx-matrix-2026",
            name_en="Shenzhen matrix vouchers",
            reviews_required=2,
            rubric=RUBRIC,
            notice_days=5,
            outcome_reports_required=True,
        ),
    )
    owner_b = UserFactory(email="owner@zqx-private.test")
    company_b = services.company_create(
        actor=owner_b,
        legal_name="深圳隐秘算力矩阵科技有限公司",
        credit_code=credit_code_generate(random.Random(4471)),
        registered_city=sz.city,
        founded_on=date(2023, 5, 1),
        headcount=12,
        revenue_last_year=Decimal("1000000.00"),
    )
    # Company B's application: submitted, screened, one review in, an info request open.
    app_b = services.application_create(program=program_b, company=company_b, actor=owner_b)
    services.application_update(
        application=app_b,
        actor=owner_b,
        values={
            "title": "机密项目ZQX四四七一号",
            "summary": "不公开的训练计划。",
            "model_plans": "预训练",
            "requested_amount": Decimal("765432.10"),
            "declares_no_related_party": True,
            "declares_no_other_subsidy": True,
            "declares_true_information": True,
        },
        plan=[{"accelerator": "Ascend 910B", "domestic": True, "hours": Decimal("1000")}],
    )
    document_b = services.document_add(
        application=app_b,
        actor=owner_b,
        doc_type="business_licence",
        upload=SimpleUploadedFile("zqx-licence-4471.pdf", PDF, content_type="application/pdf"),
    )
    into_review(app_b, user=owner_b, manager=sz.manager)
    review_by(
        app_b,
        manager=sz.manager,
        reviewers=[sz.reviewer],
        scores={"team": 7, "plan": 8},
        comment="评审意见ZQX机密",
    )
    services.review_assign(application=app_b, actor=sz.manager, reviewer=sz.reviewer2)
    info = services.application_request_info(
        application=app_b, actor=sz.manager, question="补充材料问题ZQX机密"
    )
    invitation = services.company_invite(
        company=company_b, actor=owner_b, email="invitee@zqx-private.test"
    )
    staff_invitation = membership_invite(
        actor=sz.manager, city=sz.city, email="staff-invitee@zqx-private.test", role="auditor"
    )

    # Another company's application in public notice (its name is public by design), with
    # an objection (which is not).
    owner_n = UserFactory(email="owner@notice-co.test")
    company_n = services.company_create(
        actor=owner_n,
        legal_name="公示示例公司",
        credit_code=credit_code_generate(random.Random(4472)),
    )
    app_n = complete_draft(program_b, company_n, owner_n)
    into_review(app_n, user=owner_n, manager=sz.manager)
    review_by(
        app_n,
        manager=sz.manager,
        reviewers=[sz.reviewer, sz.reviewer2],
        scores={"team": 9, "plan": 9},
    )
    app_n.refresh_from_db()
    assert app_n.state == "in_notice", app_n.state
    # A decision letter of company B's application (issued as a decision would).
    with transaction.atomic():
        letter_b = letter_issue(application=app_b, kind=LetterKind.NOT_RECOMMENDED)
    objection = services.objection_raise(
        application=app_n, actor=UserFactory(email="citizen@zqx.test"), text="异议内容ZQX机密"
    )

    # Company B's vouchers, data center Y, an active and a requested redemption, usage.
    voucher_b = voucher_issue(
        program=program_b,
        company=company_b,
        amount=Decimal("987654.32"),
        actor=sz.approver,
        valid_from=period,
    )
    voucher_b2 = voucher_issue(
        program=program_b,
        company=company_b,
        amount=Decimal("876543.21"),
        actor=sz.approver,
        valid_from=period,
    )
    # Company B's outcome report of its first voucher, submitted with a document.
    outcome_b = OutcomeReport.objects.get(voucher=voucher_b, stage="final")
    services.outcome_report_update(
        report=outcome_b, actor=owner_b, values={"summary": "成果报告ZQX机密", "hires": 4471}
    )
    outcome_document_b = services.outcome_document_add(
        report=outcome_b,
        actor=owner_b,
        doc_type="outcome_report",
        upload=SimpleUploadedFile("zqx-outcome-4471.pdf", PDF, content_type="application/pdf"),
    )
    services.outcome_report_submit(report=outcome_b, actor=owner_b)
    dc_y = DataCenterFactory(slug="matrix-y", name_zh="矩阵乙中心", name_en="Matrix Y")
    dc_y.programs.add(program_b)
    Registration.objects.create(city=sz.city, data_center=dc_y, starts_on=date(2020, 1, 1))
    operator_y = UserFactory(email="ops@matrix-y.test")
    dc_y.operators.add(operator_y)
    key_y, y_key = api_key_issue(data_center=dc_y, actor=SYSTEM)
    # A webhook endpoint of data center Y and one delivery to it (its URL and secret
    # are Y's own: the matrix checks they never show elsewhere).
    hook_y, _hook_secret = endpoint_create(
        data_center=dc_y,
        actor=operator_y,
        url="https://hooks.matrix-y.test/ZQX-HOOK",
        events=[WebhookEvent.REDEMPTION_REQUESTED],
    )
    hook_delivery_y = WebhookDelivery.objects.create(
        endpoint=hook_y,
        event_id="7e57e57e-0000-4000-8000-000000000447",
        event=WebhookEvent.REDEMPTION_REQUESTED,
        payload={"id": "7e57e57e-0000-4000-8000-000000000447", "data": {}},
    )
    active = Redemption.objects.create(
        voucher=voucher_b,
        data_center=dc_y,
        contract_ref="HT-ZQX-ACTIVE-01",
        status=RedemptionStatus.ACTIVE,
        requested_by=owner_b,
    )
    requested = Redemption.objects.create(
        voucher=voucher_b2,
        data_center=dc_y,
        contract_ref="HT-ZQX-REQUEST-02",
        status=RedemptionStatus.REQUESTED,
        requested_by=owner_b,
    )
    start = datetime(period.year, period.month, 3, 9, 0, tzinfo=tz)
    records = [
        record(
            n,
            voucher_b.code,
            record_id=f"zqx-rec-{n:04d}",
            started_at=(start + timedelta(days=n)).isoformat(),
            ended_at=(start + timedelta(days=n, hours=10)).isoformat(),
            amount=amount,
        )
        for n, amount in ((1, "4321.09"), (2, "1234.57"))
    ]
    batch, _created = usage_batch_receive(data_center=dc_y, body=BatchBody.of_records(records))
    batch = usage_batch_apply(batch_id=batch.pk)
    assert batch.accepted == 2, batch.results
    # The statement of B × Y for last month, issued; and an empty draft a month earlier.
    statement = settlement_build(city=sz.city, data_center=dc_y, period=period)
    assert statement.records == 2
    statement = settlement_issue(settlement=statement, actor=sz.manager)
    earlier = (period - timedelta(days=1)).replace(day=1)
    draft = settlement_build(city=sz.city, data_center=dc_y, period=earlier)
    voucher_b.refresh_from_db()
    # A finding on Y's records in B's city (the staff queue's detail page).
    (finding_b,) = findings_raise(
        [
            FindingDraft(
                city_id=sz.city.pk,
                data_center_id=dc_y.pk,
                rule=FindingRule.PRICE_BAND,
                severity=Severity.HIGH,
                key="matrix-finding",
                evidence={"note": "matrix"},
                voucher_id=voucher_b.pk,
                company_id=company_b.pk,
                record_ids=list(
                    UsageRecord.objects.filter(data_center=dc_y).values_list("pk", flat=True)
                ),
            )
        ]
    )

    # Shareholders B and Y declared (company B's page, Y's inventory page).
    party_b = related_party_add(
        company=company_b, name="股东ZQX机密", code="110101199001019876", actor=owner_b
    )
    party_y = related_party_add(
        data_center=dc_y, name="高管ZQX机密", code="110101199002029875", actor=operator_y
    )

    markers = {
        "company B shareholder": party_b.name,
        "Y's manager": party_y.name,
        "company B legal name": company_b.legal_name,
        "company B credit code": company_b.credit_code,
        "company B member": owner_b.email,
        "application title": app_b.title,
        "document name": document_b.original_name,
        "outcome report summary": outcome_b.summary,
        "outcome document name": outcome_document_b.original_name,
        "review comment": "评审意见ZQX机密",
        "info request": info.question,
        "objection": objection.text,
        "invitation e-mail": invitation.email,
        "invitation token": invitation.token,
        "staff invitation e-mail": staff_invitation.email,
        "staff invitation token": staff_invitation.token,
        "voucher code": voucher_b.code,
        "voucher code 2": voucher_b2.code,
        "contract ref": active.contract_ref,
        "contract ref 2": requested.contract_ref,
        "usage record id": "zqx-rec-0001",
        "usage record id 2": "zqx-rec-0002",
        "Y's key prefix": key_y.prefix,
        "Y's webhook URL": hook_y.url,
        "Y's webhook secret": _hook_secret,
        "statement file": f"settlement-{sz.city.slug}-{dc_y.slug}-{period:%Y-%m}",
        "Shenzhen staff e-mail": "@shenzhen.test",
    }
    amounts = {
        "requested amount": Decimal("765432.10"),
        "voucher amount": Decimal("987654.32"),
        "voucher amount 2": Decimal("876543.21"),
        "voucher balance": voucher_b.balance,
        "statement amount": statement.amount_total,
        "statement covered": statement.covered_total,
    }
    for label, amount in amounts.items():
        for i, text in enumerate(_money(amount)):
            markers[f"{label} ({'formatted' if i == 0 else 'plain'})"] = text

    ids = {
        "application": [app_b.pk, app_n.pk],
        "document": [
            document_b.pk,
            *app_n.documents.values_list("pk", flat=True),
            outcome_document_b.pk,
        ],
        "outcome_report": [outcome_b.pk],
        "finding": [finding_b.pk],
        "related_party": [party_b.pk, party_y.pk],
        "company": [company_b.pk, company_n.pk],
        "redemption": [active.pk, requested.pk],
        "batch": [batch.pk],
        "api_key": [key_y.pk],
        "settlement": [statement.pk, draft.pk],
        "review": list(app_b.reviews.values_list("pk", flat=True)),
        "objection": [objection.pk],
        "info_request": [info.pk],
        "voucher": [voucher_b.pk, voucher_b2.pk],
        "usage_record": list(
            UsageRecord.objects.filter(data_center=dc_y).values_list("pk", flat=True)
        ),
        "program": [program_b.pk],
        "letter": [letter_b.pk],
        "webhook_endpoint": [hook_y.pk],
        "webhook_delivery": [hook_delivery_y.pk],
        "invitation": [invitation.pk],
        "membership": list(
            CityMembership.objects.filter(city=sz.city).values_list("pk", flat=True)
        ),
    }
    web_body = {
        # One body for every form: each view reads the fields it knows. Every id in it
        # names an object of city B, data center Y or company B.
        "reason": "矩阵越权尝试",
        "question": "越权提问",
        "answer": "越权回答",
        "comment": "越权评审",
        "note": "",
        "resolution": "越权处理",
        "recommend": "on",
        "conflict": "",
        "confirm": "yes",
        "amount": "200000",
        "team": "5",
        "plan": "5",
        "reviewer": sz.reviewer.pk,
        "applications": [app_b.pk, app_n.pk],
        "application": app_b.pk,
        "objection": objection.pk,
        "company": company_b.pk,
        "data_center": dc_y.pk,
        "contract_ref": "HT-HIJACK",
        "amount_cap": "100",
        "payment_ref": "PAY-HIJACK",
        "period": f"{period:%Y-%m}",
        "status": "suspended",
        "name": "hijacked key",
        "email": "hijacker@elsewhere.test",
        "text": "越权异议",
        "title": "越权标题",
        # Registering company B again under another name.
        "legal_name": "越权注册公司",
        "credit_code": company_b.credit_code,
    }
    api_body = {
        "reason": "hijack",
        "contract_ref": "HIJACK",
        "records": [
            record(
                9,
                voucher_b.code,
                record_id="zqx-rec-0001",
                started_at=start.isoformat(),
                ended_at=(start + timedelta(hours=1)).isoformat(),
            )
        ],
    }
    query = "?" + urlencode(
        {
            "q": company_b.legal_name,
            "voucher": voucher_b.code,
            "data_center": dc_y.slug,
            "status": "active",
            "period": f"{period:%Y-%m}",
        }
    )
    return World(
        a_slug=sh.city.slug,
        b_slug=sz.city.slug,
        x_slug=dc_x.slug,
        y_slug=dc_y.slug,
        program_slugs_b=[program_b.slug],
        ids=ids,
        voucher_codes=[voucher_b.code, voucher_b2.code],
        tokens=[invitation.token, staff_invitation.token],
        record_ids=["zqx-rec-0001", "zqx-rec-0002"],
        markers=markers,
        web_body=web_body,
        api_body=api_body,
        query=query,
        y_key=y_key,
        x_key=x_key,
        extra={
            "operator_x": operator_x,
            "operator_y": operator_y,
            "owner_b": owner_b,
            "manager_b": sz.manager,
        },
    )
