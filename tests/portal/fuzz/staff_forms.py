"""The forms of city staff: queues, screening, reviews, decisions, programs."""

from __future__ import annotations

from decimal import Decimal

from django.utils.datastructures import MultiValueDict
from hypothesis import strategies as st

from tests.portal.fuzz.catalogue import Form, Step, fixture, form, sh_application, sz_application
from tests.portal.fuzz.values import (
    DOCUMENT_ROWS,
    OMIT,
    RUBRIC_ROWS,
    RULE_ROWS,
    Field,
    boolean,
    choice,
    ids,
    moment,
    nasty_number,
    nasty_text,
    number,
    text,
)
from vouchers import services

# --- staff ------------------------------------------------------------------------------


@form("application queue filters")
def _(request):
    shanghai, program = fixture(request, "shanghai"), fixture(request, "sh_program")
    sh_application(request, "submitted")
    return Form(
        shanghai.reviewer,
        "/shanghai/staff/applications/",
        {
            "q": text("深度", "91"),
            "program": ids(program.pk, ""),
            "state": choice("", "submitted", "screening", "draft"),
            "assignee": ids(shanghai.reviewer.pk, ""),
            "eligibility": choice("", "pass", "fail", "needs_review"),
            "sort": choice("-submitted_at", "company__legal_name", "-average"),
            "page": number(1, 5),
        },
        method="get",
    )


@form("queue assignment")
def _(request):
    shenzhen = fixture(request, "shenzhen")
    app = sz_application(request, "in_review")
    return Form(
        shenzhen.manager,
        "/shenzhen/staff/applications/",
        {
            "reviewer": ids(shenzhen.reviewer.pk, shenzhen.manager.pk),
            "applications": ids(app.pk, many=True),
        },
        then=[Step(shenzhen.manager, f"/shenzhen/staff/applications/{app.pk}/")],
    )


@form("screening")
def _(request):
    shanghai = fixture(request, "shanghai")
    app = sh_application(request, "screening")
    return Form(
        shanghai.manager,
        f"/shanghai/staff/applications/{app.pk}/do/{{action}}/",
        {"reason": text("材料不全"), "question": text("请补充合同")},
        path_fields={
            "action": Field(
                st.sampled_from(["fail_screening", "request_info", "pass_screening"]), nasty_text
            )
        },
        then=[
            Step(shanghai.manager, f"/shanghai/staff/applications/{app.pk}/"),
            Step(fixture(request, "startup_user"), f"/company/applications/{app.pk}/"),
        ],
    )


@form("approval and rejection")
def _(request):
    shanghai = fixture(request, "shanghai")
    app = sh_application(request, "recommended")
    return Form(
        shanghai.approver,
        f"/shanghai/staff/applications/{app.pk}/do/{{action}}/",
        {"amount": number(0, Decimal("3000000.00"), places=2), "reason": text("预算不足")},
        path_fields={"action": Field(st.sampled_from(["approve", "reject"]), nasty_text)},
        then=[
            Step(shanghai.approver, f"/shanghai/staff/applications/{app.pk}/"),
            Step(fixture(request, "startup_user"), "/my/vouchers/"),
            Step(shanghai.manager, "/shanghai/staff/vouchers/"),
        ],
    )


@form("reviewer assignment")
def _(request):
    shenzhen = fixture(request, "shenzhen")
    app = sz_application(request, "in_review")
    return Form(
        shenzhen.manager,
        f"/shenzhen/staff/applications/{app.pk}/do/assign/",
        {"reviewer": ids(shenzhen.reviewer.pk, shenzhen.reviewer2.pk, shenzhen.auditor.pk)},
        then=[Step(shenzhen.reviewer, f"/shenzhen/staff/applications/{app.pk}/")],
    )


@form("conflict declaration")
def _(request):
    shenzhen = fixture(request, "shenzhen")
    app = sz_application(request, "in_review")
    services.review_assign(application=app, actor=shenzhen.manager, reviewer=shenzhen.reviewer)
    return Form(
        shenzhen.reviewer,
        f"/shenzhen/staff/applications/{app.pk}/do/declare/",
        {"conflict": choice("no", "yes"), "note": text("无")},
        then=[Step(shenzhen.reviewer, f"/shenzhen/staff/applications/{app.pk}/")],
    )


@form("review scoring")
def _(request):
    shenzhen = fixture(request, "shenzhen")
    app = sz_application(request, "in_review")
    services.review_assign(application=app, actor=shenzhen.manager, reviewer=shenzhen.reviewer)
    services.review_declare(application=app, actor=shenzhen.reviewer, conflict=False)
    return Form(
        shenzhen.reviewer,
        f"/shenzhen/staff/applications/{app.pk}/do/score/",
        {
            "score_0": number(0, 10),
            "score_1": number(0, 10),
            "score_2": Field(st.just(OMIT), nasty_number),
            "comment": text("团队扎实"),
            "recommend": choice("yes", "no"),
        },
        then=[
            Step(shenzhen.reviewer, f"/shenzhen/staff/applications/{app.pk}/"),
            Step(shenzhen.manager, "/shenzhen/staff/applications/?sort=-average"),
            Step(shenzhen.manager, "/shenzhen/staff/programs/compute-2026/ranking/"),
        ],
    )


@form("objection resolution")
def _(request):
    shenzhen = fixture(request, "shenzhen")
    app = sz_application(request, "in_notice")
    objection = services.objection_raise(
        application=app, actor=fixture(request, "outsider"), text="关联交易"
    )
    return Form(
        shenzhen.approver,
        f"/shenzhen/staff/applications/{app.pk}/do/resolve/",
        {"objection": ids(objection.pk), "resolution": text("已核实，无关联。")},
        then=[
            Step(shenzhen.approver, f"/shenzhen/staff/applications/{app.pk}/"),
            Step(None, "/shenzhen/programs/compute-2026/notice/"),
        ],
    )


def as_posted(values: dict) -> MultiValueDict:
    """The values as a view reads them (the last of several for one name)."""
    return MultiValueDict(
        {name: value if isinstance(value, list) else [value] for name, value in values.items()}
    )


SMALLINT_FIELDS = ("validity_months", "grace_days", "reviews_required", "notice_days")


def program_fields() -> dict[str, Field]:
    return {
        "slug": text("compute-2026", "compute-2027", words=False),
        "name_zh": text("算力券"),
        "name_en": text("Computing vouchers"),
        "description_zh": text("面向初创企业。", ""),
        "description_en": text("For start-ups.", ""),
        "status": choice("open", "draft", "closed", "archived"),
        "opens_at": moment(),
        "closes_at": moment(),
        "budget": number(Decimal("2000000.00"), Decimal("999999999999.99"), places=2),
        "award_min": number(0, Decimal("100000.00"), places=2),
        "award_max": number(Decimal("100000.00"), Decimal("2000000.00"), places=2),
        "rate_domestic": number(0, 1, places=2),
        "rate_other": number(0, 1, places=2),
        "company_yearly_cap": number(0, Decimal("999999999999.99"), places=2),
        "validity_months": number(0, 32767),
        "grace_days": number(0, 32767),
        "reviews_required": Field(st.sampled_from(["0", "1"]), nasty_number),
        "notice_days": Field(st.sampled_from(["0", "1", "32767"]), nasty_number),
        **RUBRIC_ROWS,
        **DOCUMENT_ROWS,
        **RULE_ROWS,
        "hard_fail_rejects": boolean(),
        "outcome_reports_required": boolean(),
        "outcome_final_days": number(0, 365),
        "outcome_midterm_months": Field(st.sampled_from(["", "6", "11"]), nasty_number),
    }


@form("program editor")
def _(request):
    shanghai, program = fixture(request, "shanghai"), fixture(request, "sh_program")
    draft = sh_application(request, "draft")
    screening = sh_application(request, "screening")
    recommended = sh_application(request, "recommended")
    user = fixture(request, "startup_user")
    staff = "/shanghai/staff/applications/{}/"
    return Form(
        shanghai.manager,
        f"/shanghai/staff/programs/{program.slug}/",
        program_fields(),
        # What the program's settings drive: its public pages, submission (eligibility),
        # the staff pages (the scoring form is built from the rubric) and approval
        # (validity), for applications made before the change.
        then=[
            Step(shanghai.manager, "/shanghai/staff/programs/"),
            Step(None, "/shanghai/programs/"),
            Step(None, f"/shanghai/programs/{program.slug}/"),
            Step(None, f"/shanghai/programs/{program.slug}/notice/"),
            Step(user, f"/company/applications/{draft.pk}/submit/", {}),
            Step(user, f"/company/applications/{draft.pk}/"),
            Step(shanghai.reviewer, staff.format(screening.pk)),
            Step(shanghai.manager, f"/shanghai/staff/programs/{program.slug}/ranking/"),
            Step(
                shanghai.approver,
                f"/shanghai/staff/applications/{recommended.pk}/do/approve/",
                {"amount": "500000.00"},
            ),
            Step(shanghai.approver, staff.format(recommended.pk)),
            Step(user, "/my/vouchers/"),
        ],
    )


@form("new program")
def _(request):
    shanghai = fixture(request, "shanghai")
    fixture(request, "sh_program")
    return Form(
        shanghai.manager,
        "/shanghai/staff/programs/new/",
        program_fields(),
        then=[
            Step(shanghai.manager, "/shanghai/staff/programs/"),
            Step(None, "/shanghai/programs/"),
        ],
    )


@form("audit search")
def _(request):
    shanghai = fixture(request, "shanghai")
    fixture(request, "sh_program")
    return Form(
        shanghai.auditor,
        "/shanghai/staff/audit/",
        {"q": text("program", "company.create"), "page": number(1, 3)},
        method="get",
    )


@form("staff list pages")
def _(request):
    shanghai = fixture(request, "shanghai")
    fixture(request, "sh_program")
    return Form(
        shanghai.auditor,
        "/shanghai/staff/{page}/",
        {"page": number(1, 3)},
        method="get",
        path_fields={
            "page": Field(
                st.sampled_from(
                    ["members", "programs/compute-2026/ranking", "sync", "data-centers"]
                ),
                nasty_text,
            )
        },
    )
