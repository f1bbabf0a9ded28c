"""The program editor without JSON (issue #13 item 7): the rubric, required documents and
eligibility rules as rows; every mistake shown at once beside its field; the order kept;
each rule type's bounds; a preview; the demo programs come back unchanged."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from django.utils import translation

from portal.audit import SYSTEM
from portal.models import AuditEvent
from tests.vouchers.conftest import program_values
from vouchers import demo, services
from vouchers.forms import ScoreForm
from vouchers.models import Program

PREFIXES = {"rubric": "rubric", "required_documents": "docs", "eligibility_rules": "rules"}


def page_data(context) -> dict:
    """What a browser posts back for the page as rendered (nothing changed)."""
    data: dict = {}
    forms = [context["form"]]
    for formset in context["rows"].values():
        forms += [formset.management_form, *formset.forms]
    for form in forms:
        for field in form:
            value = field.value()
            if value is None or value is False or value == "":
                continue
            if value is True:
                value = "on"
            elif isinstance(value, datetime):
                value = value.strftime("%Y-%m-%dT%H:%M")
            data[field.html_name] = value
    return data


def with_rows(data: dict, name: str, rows: list[dict]) -> dict:
    """Replace one row list of the posted data (a row's keys are its form's fields)."""
    prefix = PREFIXES[name]
    data = {k: v for k, v in data.items() if not k.startswith(f"{prefix}-")}
    data |= {
        f"{prefix}-TOTAL_FORMS": str(len(rows)),
        f"{prefix}-INITIAL_FORMS": "0",
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }
    for i, row in enumerate(rows):
        data |= {f"{prefix}-{i}-{key}": value for key, value in row.items()}
    return data


@pytest.fixture
def editor(client, sh_program, shanghai):
    client.force_login(shanghai.manager)
    url = f"/shanghai/staff/programs/{sh_program.slug}/"
    page = client.get(url)
    assert page.status_code == 200
    return url, page_data(page.context)


def test_the_editor_saves_rubric_documents_and_rules_from_rows(client, editor, sh_program):
    url, data = editor
    data["reviews_required"] = "1"
    data = with_rows(
        data,
        "rubric",
        [
            {"name": "技术方案", "name_en": " Technology ", "weight": "2", "max": "10"},
            {"name": "团队", "weight": "0.5", "max": "20"},
            {},  # a blank row is left out
        ],
    )
    data = with_rows(
        data,
        "required_documents",
        [{"doc_type": "business_licence"}, {"doc_type": "__custom__", "custom": "env_permit"}],
    )
    data = with_rows(
        data,
        "eligibility_rules",
        [
            {"type": "registered_in_city"},
            {"type": "founded_within_years", "years": "10"},
            {"type": "max_headcount", "max_headcount": "300"},
            {"type": "max_revenue", "max_revenue": "50000000.50"},
            {"type": "within_company_yearly_cap"},
        ],
    )
    response = client.post(url, data)
    assert response.status_code == 302, response.context and response.context["form"].errors
    program = Program.objects.get(pk=sh_program.pk)
    assert program.rubric == [
        {"name": "技术方案", "name_en": "Technology", "weight": 2, "max": 10},
        {"name": "团队", "weight": 0.5, "max": 20},
    ]
    assert program.required_documents == ["business_licence", "env_permit"]
    assert program.eligibility_rules == [
        {"type": "registered_in_city"},
        {"type": "founded_within_years", "years": 10},
        {"type": "max_headcount", "max": 300},
        {"type": "max_revenue", "max": "50000000.5"},
        {"type": "within_company_yearly_cap"},
    ]
    assert AuditEvent.objects.filter(action="program.save").count() == 2


def test_every_mistake_is_shown_at_once_beside_its_field(client, editor, sh_program):
    url, data = editor
    before = Program.objects.get(pk=sh_program.pk)
    data |= {"award_min": "3000000", "award_max": "2000000", "budget": "", "rate_other": "2"}
    data = with_rows(
        data,
        "rubric",
        [{"name": "团队", "weight": "0", "max": "10"}, {"name": "团队", "weight": "1", "max": "0"}],
    )
    data = with_rows(data, "required_documents", [{"doc_type": "__custom__"}])
    data = with_rows(
        data,
        "eligibility_rules",
        [
            {"type": "founded_within_years", "years": "0"},
            {"type": "registered_in_city", "max_headcount": "300"},
            {"type": "nonsense"},
        ],
    )
    response = client.post(url, data)
    assert response.status_code == 200
    form, rows = response.context["form"], response.context["rows"]
    assert set(form.errors) >= {"budget", "rate_other"}
    rubric = rows["rubric"].forms
    assert "weight" in rubric[0].errors
    assert "max" in rubric[1].errors
    assert "custom" in rows["required_documents"].forms[0].errors
    rules = rows["eligibility_rules"].forms
    assert "years" in rules[0].errors
    assert "max_headcount" in rules[1].errors
    assert "type" in rules[2].errors
    page = response.content.decode()
    assert page.count('role="alert"') >= 8
    assert Program.objects.get(pk=sh_program.pk).updated_at == before.updated_at


def test_checks_across_fields_show_with_the_row_errors(client, editor, sh_program):
    url, data = editor
    data |= {"award_min": "3000000", "award_max": "2000000", "reviews_required": "2"}
    data = with_rows(data, "rubric", [])
    data = with_rows(data, "eligibility_rules", [{"type": "max_headcount", "max_headcount": "0"}])
    response = client.post(url, data)
    assert response.status_code == 200
    assert response.context["form"].errors["award_min"] == ["最低资助额不能高于最高资助额。"]
    assert len(response.context["row_errors"]["rubric"]) == 1
    assert "max_headcount" in response.context["rows"]["eligibility_rules"].forms[0].errors
    assert Program.objects.get(pk=sh_program.pk).award_min == Decimal("100000.00")


def test_rows_keep_the_order_chosen_and_removed_rows_go(client, editor, sh_program):
    url, data = editor
    data = with_rows(
        data,
        "eligibility_rules",
        [
            {"type": "declarations_made", "ORDER": "3"},
            {"type": "registered_in_city", "ORDER": "1"},
            {"type": "required_documents", "ORDER": "2", "DELETE": "on"},
            {"type": "max_headcount", "max_headcount": "50", "ORDER": "2"},
            {"type": "no_open_application_in_program"},  # no position: last
        ],
    )
    assert client.post(url, data).status_code == 302
    assert Program.objects.get(pk=sh_program.pk).eligibility_rules == [
        {"type": "registered_in_city"},
        {"type": "max_headcount", "max": 50},
        {"type": "declarations_made"},
        {"type": "no_open_application_in_program"},
    ]


@pytest.mark.parametrize(
    ("rule", "field", "value", "accepted"),
    [
        ("founded_within_years", "years", "0", False),
        ("founded_within_years", "years", "1", True),
        ("founded_within_years", "years", "100", True),
        ("founded_within_years", "years", "101", False),
        ("founded_within_years", "years", "2.5", False),
        ("max_headcount", "max_headcount", "0", False),
        ("max_headcount", "max_headcount", "10000000", True),
        ("max_headcount", "max_headcount", "10000001", False),
        ("max_revenue", "max_revenue", "-1", False),
        ("max_revenue", "max_revenue", "0", True),
        ("max_revenue", "max_revenue", "10000000000000", True),
        ("max_revenue", "max_revenue", "10000000000001", False),
        ("within_company_yearly_cap", "cap", "1000000000000", True),
        ("within_company_yearly_cap", "cap", "1000000000001", False),
        ("within_company_yearly_cap", "cap", "NaN", False),
    ],
)
def test_each_rule_type_has_its_own_bounds(
    client, editor, sh_program, rule, field, value, accepted
):
    url, data = editor
    data = with_rows(data, "eligibility_rules", [{"type": rule, field: value}])
    response = client.post(url, data)
    saved = Program.objects.get(pk=sh_program.pk).eligibility_rules
    if accepted:
        assert response.status_code == 302
        assert saved == [
            {
                "type": rule,
                field.replace("max_headcount", "max").replace("max_revenue", "max"): int(value),
            }
        ]
    else:
        assert response.status_code == 200
        assert field in response.context["rows"]["eligibility_rules"].forms[0].errors
        assert saved == program_values()["eligibility_rules"]


@pytest.mark.parametrize("city", sorted(demo.PROGRAMS))
def test_the_demo_programs_come_back_unchanged(client, shanghai, city):
    terms = dict(demo.PROGRAMS[city])
    rules = terms.pop("rules")
    values = {
        "slug": f"demo-{city}",
        "status": "open",
        "validity_months": 12,
        "grace_days": 30,
        "rubric": demo.RUBRIC if terms["reviews_required"] else [],
        "required_documents": demo.DOCS,
        "eligibility_rules": rules + demo.BASE_RULES,
        "opens_at": datetime.fromisoformat("2026-01-01T09:00:00+08:00"),
        "closes_at": datetime.fromisoformat("2026-12-31T18:00:00+08:00"),
        **terms,
    }
    program = services.program_save(city=shanghai.city, actor=SYSTEM, values=values)
    before = {name: getattr(program, name) for name in services.PROGRAM_FIELDS}
    client.force_login(shanghai.manager)
    url = f"/shanghai/staff/programs/{program.slug}/"
    data = page_data(client.get(url).context)
    response = client.post(url, data)
    assert response.status_code == 302
    program.refresh_from_db()
    after = {name: getattr(program, name) for name in services.PROGRAM_FIELDS}
    assert after == before
    assert program.eligibility_rules == rules + demo.BASE_RULES


def test_a_custom_document_type_comes_back_unchanged(client, shanghai, sh_program):
    Program.objects.filter(pk=sh_program.pk).update(
        required_documents=["x-custom", "invoice"],
        eligibility_rules=[{"type": "max_revenue", "max": "50000000"}],
    )
    client.force_login(shanghai.manager)
    url = f"/shanghai/staff/programs/{sh_program.slug}/"
    assert client.post(url, page_data(client.get(url).context)).status_code == 302
    program = Program.objects.get(pk=sh_program.pk)
    assert program.required_documents == ["x-custom", "invoice"]
    assert program.eligibility_rules == [{"type": "max_revenue", "max": 50000000}]


def test_the_preview_shows_the_program_page_without_saving(client, editor, sh_program):
    url, data = editor
    data |= {"go": "preview", "name_en": "Preview only", "rate_domestic": "0.35"}
    data = with_rows(data, "eligibility_rules", [{"type": "founded_within_years", "years": "7"}])
    response = client.post(url, data)
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="preview"' in page
    assert "35%" in page
    assert "企业成立不满 7 年。" in page
    program = Program.objects.get(pk=sh_program.pk)
    assert program.name_en == "Computing vouchers 2026"
    assert program.eligibility_rules == program_values()["eligibility_rules"]


def test_another_citys_program_manager_gets_404_and_changes_nothing(client, sh_program, shenzhen):
    before = Program.objects.get(pk=sh_program.pk)
    client.force_login(shenzhen.manager)
    url = f"/shanghai/staff/programs/{sh_program.slug}/"
    assert client.get(url).status_code == 404
    for go in ("save", "preview"):
        data = with_rows(
            {"name_en": "Hijacked", "go": go, **program_values(slug=sh_program.slug)},
            "eligibility_rules",
            [],
        )
        data.pop("required_documents"), data.pop("rubric")
        assert client.post(url, data).status_code == 404
    assert client.post("/shanghai/staff/programs/new/", data).status_code == 404
    after = Program.objects.get(pk=sh_program.pk)
    assert (after.name_en, after.updated_at) == (before.name_en, before.updated_at)
    assert Program.objects.filter(city__slug="shanghai").count() == 1


@pytest.mark.parametrize(
    ("language", "words"),
    [
        (
            "en",
            [
                "from 2026-01-01 09:00 (Asia/Shanghai)",
                "until 2026-12-31 18:00 (Asia/Shanghai)",
                "pays 30% of the cost on domestic chips and 25% on other chips",
                "The company was founded within the last 10 years.",
                "The company has at most 300 employees.",
                "within ¥3,000,000.00",
                "Highest total",
            ],
        ),
        (
            "zh-hans",
            [
                "自 2026-01-01 09:00 (Asia/Shanghai) 起",
                "至 2026-12-31 18:00 (Asia/Shanghai) 止",
                "国产芯片算力费用的 30%，其他芯片的 25%",
                "企业成立不满 10 年。",
                "企业员工不超过 300 人。",
                "不超过 ¥3,000,000.00",
                "最高总分",
            ],
        ),
    ],
)
def test_the_program_page_shows_window_rules_rubric_and_rates(
    client, shanghai, sh_program, language, words
):
    services.program_save(
        city=shanghai.city,
        actor=shanghai.manager,
        program=sh_program,
        values=program_values(
            opens_at=datetime.fromisoformat("2026-01-01T01:00:00+00:00"),
            closes_at=datetime.fromisoformat("2026-12-31T10:00:00+00:00"),
            rate_other=Decimal("0.25"),
            reviews_required=1,
            rubric=[{"name": "团队", "weight": 2, "max": 10}],
            eligibility_rules=[
                {"type": "founded_within_years", "years": 10},
                {"type": "max_headcount", "max": 300},
                {"type": "within_company_yearly_cap"},
            ],
        ),
    )
    page = client.get(
        f"/shanghai/programs/{sh_program.slug}/", HTTP_ACCEPT_LANGUAGE=language
    ).content.decode()
    for expected in words:
        assert expected in page, expected
    assert "团队" in page and "×2" in page


@pytest.mark.parametrize("value", ["sNaN", "NaN", "-Infinity"])
def test_a_non_finite_number_in_a_blank_row_is_a_field_error(client, editor, sh_program, value):
    url, data = editor
    data |= {"rubric-TOTAL_FORMS": "1", "rubric-INITIAL_FORMS": "0", "reviews_required": "1"}
    data |= {"rubric-0-name": "团队", "rubric-0-weight": value, "rubric-0-max": "10"}
    response = client.post(url, data)
    assert response.status_code == 200
    assert "weight" in response.context["rows"]["rubric"].forms[0].errors
    assert Program.objects.get(pk=sh_program.pk).rubric == []


@pytest.mark.parametrize("field", ["budget", "award_min", "rate_domestic", "company_yearly_cap"])
@pytest.mark.parametrize("value", ["sNaN", "-Infinity"])
def test_a_non_finite_money_field_is_a_field_error(client, editor, sh_program, field, value):
    url, data = editor
    response = client.post(url, data | {field: value})
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert Program.objects.get(pk=sh_program.pk).budget == Decimal("5000000.00")


def test_a_criterion_reads_in_the_readers_language(sh_program):
    # A criterion had one name, shown on pages of both languages (issue #14 item 2): its
    # English name shows on English pages, the name (its key in reviews) otherwise.
    rubric = [
        {"name": "技术方案", "name_en": "Technology", "weight": 2, "max": 10},
        {"name": "团队", "weight": 1, "max": 10},
    ]
    Program.objects.filter(pk=sh_program.pk).update(rubric=rubric)
    program = Program.objects.get(pk=sh_program.pk)
    with translation.override("en"):
        assert [r["label"] for r in program.rubric_rows] == ["Technology", "团队"]
        form = ScoreForm(rubric=program.rubric)
        assert form.fields["score_0"].label.startswith("Technology (0–10")
    with translation.override("zh-hans"):
        assert [r["label"] for r in program.rubric_rows] == ["技术方案", "团队"]
        assert ScoreForm(rubric=program.rubric).fields["score_0"].label.startswith("技术方案")
    # Points stay keyed by the name, whatever the page's language.
    form = ScoreForm({"recommend": "yes", "score_0": "8", "score_1": "9"}, rubric=program.rubric)
    assert form.is_valid(), form.errors
    assert form.scores() == {"技术方案": 8, "团队": 9}


def test_an_english_name_too_long_is_refused(client, editor, sh_program):
    url, data = editor
    data["reviews_required"] = "1"
    data = with_rows(
        data, "rubric", [{"name": "团队", "name_en": "x" * 101, "weight": "1", "max": "10"}]
    )
    response = client.post(url, data)
    assert response.status_code == 200
    assert "rubric-0-name_en" in response.content.decode()
    assert services.rubric_problem([{"name": "a", "name_en": 5, "weight": 1, "max": 1}])
