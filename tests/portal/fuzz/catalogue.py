"""The catalogue of forms (`FORMS`, filled by `@form`) and the forms of companies,
applicants and everyone signed in."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import strategies as st

from portal.models import User
from tests.portal.fuzz.values import (
    OMIT,
    Field,
    boolean,
    choice,
    day,
    ids,
    nasty_bool,
    nasty_id,
    nasty_number,
    nasty_text,
    number,
    text,
    uploads,
)
from tests.vouchers.conftest import (
    complete_draft,
    into_review,
    program_values,
    review_by,
)
from vouchers import eligibility, services
from vouchers.credit_code import credit_code_generate
from vouchers.models import Application

# --- the catalogue ------------------------------------------------------------------------


@dataclass
class Step:
    """A request after the fuzzed one, to see that what it saved still shows."""

    user: User | None
    url: str
    data: dict | None = None  # None: a GET


@dataclass
class Form:
    user: User | None
    url: str  # may name `{path_fields}`, quoted into the path
    fields: dict[str, Field]
    fixed: dict[str, Any] = field(default_factory=dict)
    method: str = "post"
    path_fields: dict[str, Field] = field(default_factory=dict)
    then: list[Step] = field(default_factory=list)
    # Values known to answer 500, each with an xfail test: left out, so the fuzzer looks
    # for what is not known yet (none at present).
    known: Callable[[dict], bool] = lambda values: False


Prepare = Callable[[pytest.FixtureRequest], Form]
FORMS: dict[str, Prepare] = {}


def form(name: str) -> Callable[[Prepare], Prepare]:
    def register(prepare: Prepare) -> Prepare:
        FORMS[name] = prepare
        return prepare

    return register


def fixture(request: pytest.FixtureRequest, name: str) -> Any:
    return request.getfixturevalue(name)


def sh_application(request: pytest.FixtureRequest, state: str, program=None) -> Application:
    """An application of `startup_user`'s company to Shanghai's screening-only program,
    brought to `state` through the services."""
    shanghai, user = fixture(request, "shanghai"), fixture(request, "startup_user")
    program = program or fixture(request, "sh_program")
    app = complete_draft(program, fixture(request, "company"), user)
    if state == "draft":
        return app
    services.application_submit(application=app, actor=user)
    if state == "submitted":
        return app
    services.application_start_screening(application=app, actor=shanghai.manager)
    if state == "info_requested":
        services.application_request_info(application=app, actor=shanghai.manager, question="?")
    elif state == "recommended":
        services.application_pass_screening(application=app, actor=shanghai.manager)
    app.refresh_from_db()
    assert app.state == state, app.state
    return app


def sz_application(request: pytest.FixtureRequest, state: str) -> Application:
    """An application to Shenzhen's program (two reviews, five days of public notice)."""
    shenzhen, user = fixture(request, "shenzhen"), fixture(request, "startup_user")
    app = complete_draft(fixture(request, "sz_program"), fixture(request, "company"), user)
    into_review(app, user=user, manager=shenzhen.manager)
    if state == "in_notice":
        review_by(
            app,
            manager=shenzhen.manager,
            reviewers=[shenzhen.reviewer, shenzhen.reviewer2],
            scores={"team": 8, "plan": 7},
        )
    app.refresh_from_db()
    assert app.state == state, app.state
    return app


def every_rule_program(request: pytest.FixtureRequest):
    """A Shanghai program that checks every eligibility rule at submission."""
    shanghai = fixture(request, "shanghai")
    rules = [{"type": name} for name in sorted(eligibility.CATALOGUE)]
    return services.program_save(
        city=shanghai.city,
        actor=shanghai.manager,
        values=program_values(slug="every-rule", eligibility_rules=rules),
    )


COMPANY_FIELDS = {
    "legal_name": text("深度河流科技有限公司", "Deep River Ltd"),
    "registered_city": Field(st.sampled_from(["", OMIT]), nasty_id),
    "registered_address": text("上海市浦东新区"),
    "founded_on": day("2024-03-01", "1900-01-01", "2026-01-01", ""),
    "headcount": number(0, 10**9),
    "revenue_last_year": number(0, Decimal("999999999999.99"), places=2),
}


@form("company sign-up")
def _(request):
    shanghai = fixture(request, "shanghai")
    fields = dict(COMPANY_FIELDS)
    fields["registered_city"] = ids(shanghai.city.pk, fixture(request, "shenzhen").city.pk)
    codes = [credit_code_generate(random.Random(n)) for n in range(2, 6)]
    fields["credit_code"] = Field(
        st.sampled_from(codes), st.one_of(nasty_text, st.sampled_from([c.lower() for c in codes]))
    )
    return Form(
        fixture(request, "startup_user"),
        "/company/",
        fields,
        then=[Step(None, "/")],
    )


@form("company profile")
def _(request):
    company = fixture(request, "company")
    fields = dict(COMPANY_FIELDS)
    fields["registered_city"] = ids(fixture(request, "shanghai").city.pk)
    user = fixture(request, "startup_user")
    draft = sh_application(request, "draft", program=every_rule_program(request))
    return Form(
        user,
        f"/company/{company.pk}/",
        fields,
        fixed={"form": "profile"},
        # Eligibility reads the profile at submission.
        then=[
            Step(user, f"/company/applications/{draft.pk}/submit/", {}),
            Step(user, f"/company/applications/{draft.pk}/"),
            Step(fixture(request, "shanghai").manager, f"/shanghai/staff/applications/{draft.pk}/"),
        ],
    )


@form("company invitation")
def _(request):
    company = fixture(request, "company")
    email = Field(st.sampled_from(["cto@startup.test", "A@B.CN"]), nasty_text)
    return Form(fixture(request, "startup_user"), f"/company/{company.pk}/", {"email": email})


@form("invitation acceptance")
def _(request):
    company, user = fixture(request, "company"), fixture(request, "startup_user")
    invitation = services.company_invite(
        company=company, actor=user, email="outsider@elsewhere.test"
    )
    return Form(
        fixture(request, "outsider"),
        "/company/join/{token}/",
        {},
        path_fields={"token": Field(st.just(invitation.token), nasty_text)},
        then=[Step(fixture(request, "outsider"), "/company/")],
    )


@form("application start")
def _(request):
    company = fixture(request, "company")
    fixture(request, "sh_program")
    return Form(
        fixture(request, "startup_user"),
        "/shanghai/programs/compute-2026/",
        {"company": ids(company.pk)},
    )


@form("application project step")
def _(request):
    app = sh_application(request, "draft")
    user = fixture(request, "startup_user")
    return Form(
        user,
        f"/company/applications/{app.pk}/?step=project",
        {
            "title": text("多模态大模型训练"),
            "summary": text("训练一个 70 亿参数的多模态模型。"),
            "model_plans": text("预训练"),
            "go": choice("next", "stay"),
        },
        then=[Step(user, f"/company/applications/{app.pk}/?step=review")],
    )


@form("application compute plan step")
def _(request):
    app = sh_application(request, "draft")
    user = fixture(request, "startup_user")
    row = {
        "accelerator": text("Ascend 910B", "H100"),
        "domestic": boolean(),
        "hours": number(1, Decimal("99999999999.9"), places=1),
        "preferred_data_center": text("guian"),
        "DELETE": Field(st.just(OMIT), nasty_bool),
    }
    fields = {f"plan-{i}-{name}": spec for i in (0, 1) for name, spec in row.items()}
    fields |= {
        "plan-TOTAL_FORMS": Field(st.sampled_from(["1", "2"]), nasty_number),
        "plan-INITIAL_FORMS": Field(st.sampled_from(["0", "1"]), nasty_number),
        "plan-MIN_NUM_FORMS": Field(st.just("0"), nasty_number),
        "plan-MAX_NUM_FORMS": Field(st.just("20"), nasty_number),
        "go": choice("next", "stay"),
    }
    return Form(
        user,
        f"/company/applications/{app.pk}/?step=plan",
        fields,
        then=[Step(user, f"/company/applications/{app.pk}/?step=review")],
    )


@form("application amount step")
def _(request):
    app = sh_application(request, "draft", program=every_rule_program(request))
    user = fixture(request, "startup_user")
    return Form(
        user,
        f"/company/applications/{app.pk}/?step=amount",
        {
            "requested_amount": number(0, Decimal("999999999999.99"), places=2),
            "declares_no_related_party": boolean(),
            "declares_no_other_subsidy": boolean(),
            "declares_true_information": boolean(),
            "go": choice("next", "stay"),
        },
        # The amount is checked against the yearly cap at submission.
        then=[
            Step(user, f"/company/applications/{app.pk}/submit/", {}),
            Step(user, f"/company/applications/{app.pk}/"),
            Step(fixture(request, "shanghai").reviewer, "/shanghai/staff/applications/"),
        ],
    )


@form("document upload")
def _(request):
    fixture(request, "settings").MEDIA_ROOT = fixture(request, "tmp_path")
    app = sh_application(request, "draft")
    user = fixture(request, "startup_user")
    return Form(
        user,
        f"/company/applications/{app.pk}/?step=documents",
        {
            "doc_type": choice("business_licence", "other", "invoice"),
            "file": Field(uploads, st.one_of(uploads, nasty_text)),
            "go": choice("next", "stay"),
        },
        then=[Step(user, f"/company/applications/{app.pk}/?step=documents")],
    )


@form("application page query")
def _(request):
    app = sh_application(request, "draft")
    return Form(
        fixture(request, "startup_user"),
        f"/company/applications/{app.pk}/",
        {"step": choice("project", "plan", "amount", "documents", "review"), "page": number(1, 3)},
        method="get",
    )


@form("answer to a request for information")
def _(request):
    app = sh_application(request, "info_requested")
    user = fixture(request, "startup_user")
    return Form(
        user,
        f"/company/applications/{app.pk}/answer_info/",
        {"answer": text("已补充材料。")},
        then=[
            Step(user, f"/company/applications/{app.pk}/"),
            Step(fixture(request, "shanghai").manager, f"/shanghai/staff/applications/{app.pk}/"),
        ],
    )


@form("withdrawal")
def _(request):
    app = sh_application(request, "submitted")
    return Form(
        fixture(request, "startup_user"),
        "/company/applications/{pk}/{action}/",
        {"confirm": choice("yes")},
        path_fields={
            "pk": Field(st.just(str(app.pk)), nasty_id),
            "action": Field(st.sampled_from(["withdraw", "submit"]), nasty_text),
        },
    )


@form("objection in the public notice")
def _(request):
    app = sz_application(request, "in_notice")
    return Form(
        fixture(request, "outsider"),
        "/shenzhen/programs/compute-2026/notice/",
        {"application": ids(app.pk), "text": text("关联交易")},
        then=[
            Step(fixture(request, "shenzhen").approver, f"/shenzhen/staff/applications/{app.pk}/")
        ],
    )


@form("language switch")
def _(request):
    return Form(
        fixture(request, "startup_user"),
        "/i18n/setlang/",
        {"language": choice("en", "zh-hans"), "next": text("/company/", "/shanghai/programs/")},
        then=[Step(fixture(request, "startup_user"), "/company/")],
    )


@form("sign-in")
def _(request):
    fixture(request, "startup_user")
    return Form(
        None,
        "/accounts/login/",
        {"login": text("founder@startup.test"), "password": text("wrong"), "remember": boolean()},
    )


@form("sign-up")
def _(request):
    fixture(request, "db")
    return Form(
        None,
        "/accounts/signup/",
        {
            "email": text("new@startup.test", "founder@startup.test"),
            "password1": text("correct horse battery"),
            "password2": text("correct horse battery"),
            "display_name": text("王小明"),
            "preferred_language": choice("zh-hans", "en"),
        },
    )
