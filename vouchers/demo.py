"""Demo data of the vouchers app: each demo city's program on its published terms, the
demo startups' companies, and about forty applications in every state of the workflow,
moved there through the real services (so timelines, audit trail and vouchers are real).

Idempotent: programs, companies and applications are created only when missing.
"""

from __future__ import annotations

import random
from datetime import date
from decimal import Decimal

from django.core.files.uploadedfile import SimpleUploadedFile

from portal.audit import SYSTEM
from portal.demo import STARTUPS, staff_email
from portal.models import City, User
from vouchers import services
from vouchers.credit_code import credit_code_generate
from vouchers.models import (
    Application,
    ApplicationState,
    Company,
    OutcomeReport,
    OutcomeState,
    Program,
)

RUBRIC = [
    {"name": "技术方案", "name_en": "Technology", "weight": 2, "max": 10},
    {"name": "团队", "name_en": "Team", "weight": 1, "max": 10},
    {"name": "产业价值", "name_en": "Impact", "weight": 1, "max": 10},
]
DOCS = ["business_licence", "compute_contract"]
BASE_RULES = [
    {"type": "declarations_made"},
    {"type": "required_documents"},
    {"type": "no_open_application_in_program"},
    {"type": "within_company_yearly_cap"},
    {"type": "no_overdue_outcome_report"},
]
M = Decimal("1000000")

# The design brief's table: share covered, cap per company, yearly budget, review chain.
PROGRAMS = {
    "beijing": dict(
        name_zh="北京市算力券（2026年度）",
        name_en="Beijing computing vouchers 2026",
        rate_domestic=Decimal("0.20"),
        rate_other=Decimal("0.20"),
        company_yearly_cap=2 * M,
        budget=100 * M,
        award_min=Decimal("200000"),
        award_max=2 * M,
        reviews_required=0,
        notice_days=0,
        rules=[{"type": "registered_in_city"}],
    ),
    "shanghai": dict(
        name_zh="上海市算力券",
        name_en="Shanghai computing vouchers",
        rate_domestic=Decimal("0.30"),
        rate_other=Decimal("0.30"),
        company_yearly_cap=None,
        budget=600 * M,
        award_min=Decimal("500000"),
        award_max=10 * M,
        reviews_required=1,
        notice_days=0,
        rules=[{"type": "registered_in_city"}],
    ),
    "shenzhen": dict(
        name_zh="深圳市算力券",
        name_en="Shenzhen computing vouchers",
        rate_domestic=Decimal("0.50"),
        rate_other=Decimal("0.50"),
        company_yearly_cap=10 * M,
        budget=500 * M,
        award_min=Decimal("500000"),
        award_max=10 * M,
        reviews_required=2,
        notice_days=5,
        rules=[{"type": "registered_in_city"}, {"type": "max_headcount", "max": 500}],
    ),
    "hangzhou": dict(
        name_zh="杭州市算力券",
        name_en="Hangzhou computing vouchers",
        rate_domestic=Decimal("0.30"),
        rate_other=Decimal("0.20"),
        company_yearly_cap=8 * M,
        budget=250 * M,
        award_min=Decimal("300000"),
        award_max=8 * M,
        reviews_required=1,
        notice_days=7,
        rules=[{"type": "registered_in_city"}],
    ),
    "chengdu": dict(
        name_zh="成都市算力券（重大项目）",
        name_en="Chengdu computing vouchers (major projects)",
        rate_domestic=Decimal("0.30"),
        rate_other=Decimal("0.30"),
        company_yearly_cap=3 * M,
        budget=10 * M,
        award_min=Decimal("500000"),
        award_max=3 * M,
        reviews_required=2,
        notice_days=5,
        rules=[{"type": "registered_in_city"}, {"type": "founded_within_years", "years": 10}],
    ),
    "guizhou": dict(
        name_zh="贵州省算力券",
        name_en="Guizhou computing vouchers",
        rate_domestic=Decimal("0.25"),
        rate_other=Decimal("0.25"),
        company_yearly_cap=None,
        budget=80 * M,
        award_min=Decimal("100000"),
        award_max=5 * M,
        reviews_required=0,
        notice_days=5,
        rules=[],  # companies from anywhere may apply
    ),
}

# The workflow state each demo application is taken to, per city (about 40 in all).
JOURNEYS = [
    "approved",
    "approved",
    "in_notice_or_recommended",
    "in_review",
    "info_requested",
    "submitted",
    "not_recommended",
    "rejected",
    "withdrawn",
    "draft",
]
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _program(city: City, terms: dict) -> Program:
    existing = Program.objects.filter(city=city, slug="compute-2026").first()
    if existing:
        return existing
    terms = dict(terms)
    rules = terms.pop("rules")
    values = {
        "slug": "compute-2026",
        "status": "open",
        "description_zh": "为在本地使用登记数据中心算力的人工智能企业提供算力费用补贴。",
        "description_en": "Pays part of the GPU time AI companies buy at registered data centers.",
        "validity_months": 12,
        "grace_days": 30,
        "rubric": RUBRIC if terms["reviews_required"] else [],
        "required_documents": DOCS,
        "eligibility_rules": rules + BASE_RULES,
        "hard_fail_rejects": False,
        # Outcome reports (成果报告): a final one 30 days after the voucher ends, a
        # mid-term one after six months.
        "outcome_reports_required": True,
        "outcome_final_days": 30,
        "outcome_midterm_months": 6,
        **terms,
    }
    return services.program_save(city=city, actor=SYSTEM, values=values)


def _companies(cities: dict[str, City]) -> list[tuple[Company, User]]:
    rng = random.Random(2026)
    homes = ["beijing", "shanghai", "shenzhen", "hangzhou", "chengdu", "shanghai"]
    names = [
        "智谱演示科技有限公司",
        "月湖智能科技有限公司",
        "深河科技有限公司",
        "灵犀机器人有限公司",
        "千帆生物科技有限公司",
        "星辰视觉科技有限公司",
    ]
    result = []
    for (email, _name, _lang), home, legal in zip(STARTUPS, homes, names, strict=True):
        user = User.objects.get(email=email)
        code = credit_code_generate(rng, region="110000")
        company = Company.objects.filter(legal_name=legal).first() or services.company_create(
            actor=user,
            legal_name=legal,
            credit_code=code,
            registered_city=cities[home],
            registered_address=f"{cities[home].name_zh}高新区创新路{rng.randint(1, 99)}号",
            founded_on=date(2019 + rng.randint(0, 5), rng.randint(1, 12), 1),
            headcount=rng.randint(15, 400),
            revenue_last_year=Decimal(rng.randint(1, 80)) * M / 10,
        )
        result.append((company, user))
    return result


def _staff(city: City, key: str) -> User:
    return User.objects.get(email=staff_email(city.slug, key))


def _journey(program: Program, company: Company, user: User, target: str, i: int) -> None:
    city = program.city
    app = services.application_create(program=program, company=company, actor=user)
    amount = min(program.award_max, max(program.award_min, Decimal(500000 + 250000 * i)))
    services.application_update(
        application=app,
        actor=user,
        values={
            "title": [
                "多模态大模型预训练",
                "医疗影像基础模型",
                "工业质检视觉模型",
                "具身智能控制模型",
                "蛋白质结构预测",
                "中文代码大模型",
            ][i % 6],
            "summary": "使用国产与进口加速卡训练并部署模型，详见算力计划。",
            "model_plans": "预训练 70 亿参数模型，指令微调后上线推理服务。",
            "requested_amount": amount,
            "declares_no_related_party": True,
            "declares_no_other_subsidy": True,
            "declares_true_information": True,
        },
        plan=[
            {"accelerator": "Ascend 910B", "domestic": True, "hours": Decimal(20000 + 1000 * i)},
            {"accelerator": "NVIDIA H20", "domestic": False, "hours": Decimal(5000)},
        ],
    )
    for doc in DOCS:
        services.document_add(
            application=app, actor=user, doc_type=doc, upload=SimpleUploadedFile(f"{doc}.pdf", PDF)
        )
    if target == "draft":
        return
    services.application_submit(application=app, actor=user)
    app.refresh_from_db()
    if target in ("submitted",) or app.state != ApplicationState.SUBMITTED:
        return
    if target == "withdrawn":
        services.application_withdraw(application=app, actor=user)
        return
    reviewer, manager, approver = (
        _staff(city, "reviewer"),
        _staff(city, "manager"),
        _staff(city, "approver"),
    )
    services.application_start_screening(application=app, actor=reviewer)
    if target == "info_requested":
        services.application_request_info(
            application=app, actor=reviewer, question="请补充与数据中心签订的算力合同盖章页。"
        )
        return
    if target == "not_recommended":
        services.application_fail_screening(
            application=app, actor=reviewer, reason="算力合同中的服务方与申请企业存在关联关系。"
        )
        return
    services.application_pass_screening(application=app, actor=reviewer)
    app.refresh_from_db()
    if app.state == ApplicationState.IN_REVIEW:
        if target == "in_review":
            services.review_assign(application=app, actor=manager, reviewer=reviewer)
            return
        for key in ["reviewer", "reviewer2"][: program.reviews_required]:
            person = _staff(city, key)
            services.review_assign(application=app, actor=manager, reviewer=person)
            services.review_declare(application=app, actor=person, conflict=False)
            services.review_submit(
                application=app,
                actor=person,
                scores={str(c["name"]): 7 + (i + len(key)) % 4 for c in RUBRIC},
                comment="技术路线清晰，算力需求测算合理。",
                recommend=True,
            )
        app.refresh_from_db()
    if target in ("in_notice_or_recommended", "in_review"):
        return
    if app.state == ApplicationState.IN_NOTICE:
        # Demo history: the notice period has passed.
        Application.objects.filter(pk=app.pk).update(notice_ends_at=app.submitted_at)
        app.refresh_from_db()
    if target == "rejected":
        services.application_reject(
            application=app, actor=approver, reason="本年度预算已优先支持排名更高的项目。"
        )
    else:
        services.application_approve(
            application=app, actor=approver, amount=amount, reason="按实际需求核减。"
        )


def seed_vouchers() -> int:
    """Programs, companies and demo applications; returns the number of applications."""
    cities = {c.slug: c for c in City.objects.filter(slug__in=PROGRAMS)}
    programs = {
        slug: _program(cities[slug], terms) for slug, terms in PROGRAMS.items() if slug in cities
    }
    companies = _companies(cities)
    if Application.objects.exists():
        return Application.objects.count()
    for n, program in enumerate(programs.values()):
        # Seven per city, the states rotating so every one of them is shown somewhere.
        for j in range(7):
            target = JOURNEYS[(j + 2 * n) % len(JOURNEYS)]
            # Companies take turns; one registered elsewhere shows a failed rule.
            company, user = companies[(j + n) % len(companies)]
            _journey(program, company, user, target, j)
    return Application.objects.count()


def seed_outcome_reports() -> int:
    """One accepted outcome report (验收通过): the mid-term report of the first demo
    voucher, filled in, with a document, submitted by the company and accepted by the
    city's program manager through the services. Returns the accepted reports."""
    accepted = OutcomeReport.objects.filter(state=OutcomeState.ACCEPTED)
    if accepted.exists():
        return accepted.count()
    report = (
        OutcomeReport.objects.filter(stage="midterm", state=OutcomeState.DRAFT)
        .select_related("city", "company")
        .order_by("city__slug", "pk")
        .first()
    )
    if report is None:
        return 0
    member = report.company.members.order_by("pk").first()
    if member is None:  # pragma: no cover - every demo company has its founder
        return 0
    services.outcome_report_update(
        report=report,
        actor=member,
        values={
            "models_trained": 3,
            "largest_model_parameters": Decimal("7"),
            "benchmarks": "C-Eval 68.4（基线 61.2）\nCMMLU 70.1（基线 63.5）",
            "products_launched": 1,
            "papers_published": 2,
            "hires": 6,
            "summary": "完成 70 亿参数多模态模型的预训练与指令微调，推理服务已上线，"
            "服务三家制造业客户；发表论文两篇，新招聘算法工程师六名。",
        },
    )
    services.outcome_document_add(
        report=report,
        actor=member,
        doc_type="outcome_report",
        upload=SimpleUploadedFile("中期成果报告.pdf", PDF),
    )
    services.outcome_report_submit(report=report, actor=member)
    services.outcome_report_accept(
        report=report,
        actor=_staff(report.city, "manager"),
        comment="中期成果达到计划目标，验收通过。",
    )
    return 1
