"""Fixtures of the workflow tests: Shanghai runs a screening-only program without
public notice; Shenzhen needs two reviews and five days of public notice. The ledger's
tests (and compute's) make programs and companies straight in the database instead
(`make_program`, `make_company`)."""

from __future__ import annotations

import random
from datetime import date
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.factories import UserFactory
from vouchers import services
from vouchers.credit_code import credit_code_generate
from vouchers.models import Company, CompanyMember, Program

PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
RUBRIC = [
    {"name": "team", "weight": 1, "max": 10},
    {"name": "plan", "weight": 2, "max": 10},
]


def make_program(city, **overrides) -> Program:
    fields = {
        "slug": "compute-2026",
        "name_zh": "算力券",
        "name_en": "Computing vouchers",
        "status": "open",
        "budget": Decimal("10000000.00"),
        "award_min": Decimal("100000.00"),
        "award_max": Decimal("2000000.00"),
        "rate_domestic": Decimal("0.30"),
        "rate_other": Decimal("0.20"),
        "validity_months": 12,
        "grace_days": 30,
    }
    fields.update(overrides)
    return Program.objects.create(city=city, **fields)


def make_company(user, *, name="深度河流科技有限公司", code="91310000MA1FL8TQ2X") -> Company:
    company = Company.objects.create(legal_name=name, credit_code=code)
    CompanyMember.objects.create(company=company, user=user, is_owner=True)
    return company


def program_values(**overrides) -> dict:
    values = {
        "slug": "compute-2026",
        "name_zh": "算力券",
        "name_en": "Computing vouchers 2026",
        "status": "open",
        "budget": Decimal("5000000.00"),
        "award_min": Decimal("100000.00"),
        "award_max": Decimal("2000000.00"),
        "rate_domestic": Decimal("0.30"),
        "rate_other": Decimal("0.20"),
        "company_yearly_cap": Decimal("3000000.00"),
        "validity_months": 12,
        "grace_days": 30,
        "reviews_required": 0,
        "rubric": [],
        "notice_days": 0,
        "required_documents": ["business_licence"],
        "eligibility_rules": [{"type": "declarations_made"}, {"type": "required_documents"}],
    }
    values.update(overrides)
    return values


@pytest.fixture
def sh_program(shanghai) -> Program:
    return services.program_save(
        city=shanghai.city, actor=shanghai.manager, values=program_values()
    )


@pytest.fixture
def sz_program(shenzhen) -> Program:
    return services.program_save(
        city=shenzhen.city,
        actor=shenzhen.manager,
        values=program_values(reviews_required=2, rubric=RUBRIC, notice_days=5),
    )


@pytest.fixture
def company(startup_user, shanghai):
    return services.company_create(
        actor=startup_user,
        legal_name="深度河流科技有限公司",
        credit_code=credit_code_generate(random.Random(1)),
        registered_city=shanghai.city,
        founded_on=date(2024, 3, 1),
        headcount=40,
        revenue_last_year=Decimal("3000000.00"),
    )


def complete_draft(program, company, user, *, amount="500000.00"):
    app = services.application_create(program=program, company=company, actor=user)
    services.application_update(
        application=app,
        actor=user,
        values={
            "title": "多模态大模型训练",
            "summary": "训练一个 70 亿参数的多模态模型。",
            "model_plans": "预训练 + 指令微调",
            "requested_amount": Decimal(amount),
            "declares_no_related_party": True,
            "declares_no_other_subsidy": True,
            "declares_true_information": True,
        },
        plan=[{"accelerator": "Ascend 910B", "domestic": True, "hours": Decimal("20000")}],
    )
    services.document_add(
        application=app,
        actor=user,
        doc_type="business_licence",
        upload=SimpleUploadedFile("licence.pdf", PDF, content_type="application/pdf"),
    )
    return app


@pytest.fixture
def member2(company):
    user = UserFactory(email="cto@startup.test")
    company.members.add(user)
    return user


def into_review(app, *, user, manager) -> None:
    """Submit, then screening passed by the program manager (programs with reviews)."""
    services.application_submit(application=app, actor=user)
    services.application_start_screening(application=app, actor=manager)
    services.application_pass_screening(application=app, actor=manager)


def review_by(app, *, manager, reviewers, scores, recommend=True, comment="") -> None:
    """Each reviewer is assigned, declares no conflict and submits the same scores."""
    for reviewer in reviewers:
        services.review_assign(application=app, actor=manager, reviewer=reviewer)
        services.review_declare(application=app, actor=reviewer, conflict=False)
        services.review_submit(
            application=app, actor=reviewer, scores=scores, comment=comment, recommend=recommend
        )
