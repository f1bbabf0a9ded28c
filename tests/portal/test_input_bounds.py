"""Every input has a bound and a clear answer: NUL characters, non-finite numbers,
unbounded JSON settings, oversized bodies and floods get a 4xx with a message a person
can act on, never a 500, and nothing is written."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from portal.inputs import InputRefused, json_loads_bounded, text_poisoned
from portal.models import AuditEvent
from tests.compute.conftest import ledger_world  # noqa: F401 - fixture
from tests.vouchers.conftest import (  # noqa: F401 - fixtures
    PDF,
    company,
    complete_draft,
    into_review,
    program_values,
    review_by,
    sh_program,
    sz_program,
)
from vouchers import services
from vouchers.models import Application, Document, Objection, Program

NUL = "\x00"


@pytest.mark.parametrize(
    "path",
    [
        f"/shanghai/staff/audit/?q=a{NUL}b",
        f"/shanghai/staff/settlements/?data_center=x{NUL}",
        f"/shanghai/staff/settlements/?status={NUL}",
        f"/shanghai/staff/vouchers/?q={NUL}",
        "/shanghai/staff/vouchers/SH-26%00/",
        f"/shanghai/staff/applications/?q={NUL}",
        f"/shanghai/programs/?{NUL}=1",
    ],
)
def test_a_nul_character_in_a_page_address_is_a_400_with_a_message(client, shanghai, path):
    client.force_login(shanghai.manager)
    response = client.get(path)
    assert response.status_code == 400
    assert "NUL" in response.content.decode()


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/usage/records?voucher=a{NUL}",
        f"/api/v1/settlements?period={NUL}",
        "/api/v1/vouchers/SH%00X",
        f"/api/v1/redemptions?cursor={NUL}",
    ],
)
def test_a_nul_character_in_an_api_address_is_the_api_error_body(ledger_world, path):
    response = ledger_world.api.get(path)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_a_nul_character_in_a_cookie_or_header_is_a_400(client, shanghai):
    client.cookies["sessionid"] = f"abc{NUL}"
    assert client.get("/").status_code == 400
    client.cookies.clear()
    assert client.get("/", HTTP_X_FORWARDED_FOR=f"1.2.3.4{NUL}").status_code == 400
    assert client.get("/").status_code == 200


def test_a_nul_character_in_a_form_field_writes_nothing(client, sh_program, company, startup_user):
    app = complete_draft(sh_program, company, startup_user)
    client.force_login(startup_user)
    before = AuditEvent.objects.count()
    response = client.post(
        f"/company/applications/{app.pk}/answer_info/", {"answer": f"已补充{NUL}"}
    )
    assert response.status_code == 400
    assert AuditEvent.objects.count() == before
    response = client.post(
        f"/shanghai/programs/{sh_program.slug}/notice/", {"application": "1", "text": f"x{NUL}"}
    )
    assert response.status_code == 400
    assert not Objection.objects.exists()


def test_a_body_over_the_limit_is_refused_before_it_is_read(client, settings):
    settings.MAX_REQUEST_BYTES = 1024
    response = client.generic(
        "POST", "/accounts/login/", b"x=1", CONTENT_LENGTH=str(100 * 1024 * 1024)
    )
    assert response.status_code == 413
    assert "MB" in response.content.decode()
    response = client.generic("POST", "/api/v1/usage/batches", b"{}", CONTENT_LENGTH="2048")
    assert (response.status_code, response.json()["error"]["code"]) == (413, "too_large")
    assert client.generic("POST", "/accounts/login/", b"", CONTENT_LENGTH="12ab").status_code == 400


# --- JSON settings --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "status"),
    [
        ({"name": "team", "weight": "NaN", "max": "10"}, 200),
        ({"name": "team", "weight": "1e999", "max": "10"}, 200),
        ({"name": "team", "weight": "-Infinity", "max": "10"}, 200),
        ({"name": "team", "weight": "1", "max": "9" * 5000}, 200),
        ({"name": "te\x00am", "weight": "1", "max": "10"}, 400),
        ({"name": "x" * 101, "weight": "1", "max": "10"}, 200),
    ],
)
def test_a_rubric_row_that_cannot_be_stored_is_refused(client, sh_program, shanghai, row, status):
    """The rubric is edited as rows (vouchers.program_forms); hostile values in a row
    are a field error (or, for text no column can hold, the whole request refused)."""
    client.force_login(shanghai.manager)
    url = f"/shanghai/staff/programs/{sh_program.slug}/"
    page = client.get(url)
    data = {k: v for k, v in page.context["form"].initial.items() if v is not None}
    data.update({"reviews_required": "1", "go": "save"})
    for prefix, rows in (("rubric", [row]), ("docs", []), ("rules", [])):
        data |= {f"{prefix}-TOTAL_FORMS": str(len(rows)), f"{prefix}-INITIAL_FORMS": "0"}
    data |= {f"rubric-0-{key}": value for key, value in row.items()}
    response = client.post(url, data)
    assert response.status_code == status
    if status == 200:
        assert response.context["rows"]["rubric"].forms[0].errors
    assert Program.objects.get(pk=sh_program.pk).rubric == []


def test_more_rubric_rows_than_allowed_are_refused(client, sh_program, shanghai):
    client.force_login(shanghai.manager)
    url = f"/shanghai/staff/programs/{sh_program.slug}/"
    page = client.get(url)
    data = {k: v for k, v in page.context["form"].initial.items() if v is not None}
    data |= {"rubric-TOTAL_FORMS": "40", "rubric-INITIAL_FORMS": "0", "reviews_required": "1"}
    data |= {f"rubric-{i}-name": f"c{i}" for i in range(40)}
    data |= {f"rubric-{i}-weight": "1" for i in range(40)}
    data |= {f"rubric-{i}-max": "10" for i in range(40)}
    data |= {"docs-TOTAL_FORMS": "0", "docs-INITIAL_FORMS": "0"}
    data |= {"rules-TOTAL_FORMS": "0", "rules-INITIAL_FORMS": "0"}
    response = client.post(url, data)
    assert response.status_code == 200
    assert response.context["rows"]["rubric"].non_form_errors()
    assert Program.objects.get(pk=sh_program.pk).rubric == []


@pytest.mark.parametrize(
    ("rules", "accepted"),
    [
        ([{"type": "founded_within_years", "years": 3000}], False),
        ([{"type": "founded_within_years", "years": 0}], False),
        ([{"type": "founded_within_years", "years": 100}], True),
        ([{"type": "max_headcount", "max": 10**12}], False),
        ([{"type": "declarations_made"}] * 100, False),
    ],
)
def test_eligibility_parameters_are_bounded(shanghai, rules, accepted):
    from portal.errors import DomainError

    values = program_values(slug="bounded", eligibility_rules=rules)
    if accepted:
        services.program_save(city=shanghai.city, actor=shanghai.manager, values=values)
        return
    with pytest.raises(DomainError) as refused:
        services.program_save(city=shanghai.city, actor=shanghai.manager, values=values)
    assert refused.value.code == "invalid"
    assert "eligibility_rules" in refused.value.fields
    assert not Program.objects.filter(slug="bounded").exists()


def test_a_program_with_a_very_old_founding_limit_still_takes_submissions(
    sh_program, shanghai, company, startup_user
):
    """What 3,000 years did before: every submission failed with a 500. The largest
    bound a program can now save still evaluates."""
    program = services.program_save(
        city=shanghai.city,
        actor=shanghai.manager,
        program=sh_program,
        values=program_values(
            eligibility_rules=[{"type": "founded_within_years", "years": 100}],
        ),
    )
    app = complete_draft(program, company, startup_user)
    services.application_submit(application=app, actor=startup_user)
    assert Application.objects.get(pk=app.pk).state != "draft"


def test_json_loads_bounded_refuses_each_hostile_form():
    for text in ("NaN", "[Infinity]", "[1e999]", '["\\u0000"]', '{"\\ud800": 1}', "[" * 50):
        with pytest.raises(InputRefused):
            json_loads_bounded(text)
    assert json_loads_bounded('[{"a": "b"}, 1.5]') == [{"a": "b"}, 1.5]
    assert json_loads_bounded('["[[[[[[[[[[[[[["]', max_depth=1) == ["[[[[[[[[[[[[[["]
    assert not text_poisoned("普通的文字 \t\n")


# --- floods ---------------------------------------------------------------------------


def test_one_person_may_raise_at_most_three_objections_to_an_application(
    sz_program, shenzhen, startup_user, outsider
):
    from portal.errors import DomainError

    company = services.company_create(
        actor=startup_user, legal_name="深圳公司", credit_code="91440300708461136T"
    )
    app = complete_draft(sz_program, company, startup_user)
    into_review(app, user=startup_user, manager=shenzhen.manager)
    review_by(
        app,
        manager=shenzhen.manager,
        reviewers=(shenzhen.reviewer, shenzhen.reviewer2),
        scores={"team": 8, "plan": 9},
        comment="好",
        recommend=True,
    )
    for n in range(3):
        services.objection_raise(application=app, actor=outsider, text=f"异议 {n}")
    with pytest.raises(DomainError) as refused:
        services.objection_raise(application=app, actor=outsider, text="第四条")
    assert refused.value.code == "conflict"
    assert Objection.objects.filter(raised_by=outsider).count() == 3
    # Someone else may still object.
    services.objection_raise(application=app, actor=shenzhen.reviewer, text="另一人的异议")


def test_an_application_takes_a_bounded_number_of_documents(
    sh_program, company, startup_user, monkeypatch
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from portal.errors import DomainError

    monkeypatch.setattr(services.applications, "MAX_DOCUMENTS_PER_APPLICATION", 3)
    app = complete_draft(sh_program, company, startup_user)
    while app.documents.count() < 3:
        services.document_add(
            application=app,
            actor=startup_user,
            doc_type="other",
            upload=SimpleUploadedFile("a.pdf", PDF),
        )
    with pytest.raises(DomainError) as refused:
        services.document_add(
            application=app,
            actor=startup_user,
            doc_type="other",
            upload=SimpleUploadedFile("b.pdf", PDF),
        )
    assert refused.value.code == "invalid"
    assert list(refused.value.fields) == ["file"]
    assert Document.objects.filter(application=app).count() == 3


# --- the API's JSON bodies ------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        '{"reason": NaN}',
        '{"reason": "x\\u0000"}',
        '{"reason": "\\ud800"}',
        '{"reason": ' + "[" * 3000 + "]" * 3000 + "}",
    ],
)
def test_hostile_json_in_an_api_body_is_a_400(ledger_world, body):
    w = ledger_world
    url = f"/api/v1/redemptions/{w.redemption.pk}/reject"
    response = w.api.post(url, data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    w.redemption.refresh_from_db()
    assert w.redemption.status == "active"


def test_usage_with_an_end_far_in_the_future_is_still_not_charged_later(
    ledger_world, django_capture_on_commit_callbacks
):
    """Re-applying a batch decides against its arrival time, not the time of applying."""
    from compute.ingest import usage_batch_apply
    from compute.models import UsageBatch
    from tests.compute.conftest import record

    w = ledger_world
    end = timezone.now() + timedelta(hours=1)
    body = {"records": [record(1, w.voucher.code, ended_at=end.isoformat())]}
    response = w.api.post("/api/v1/usage/batches", body, format="json")
    batch = UsageBatch.objects.get(pk=response.json()["id"])
    import time_machine

    with time_machine.travel(end + timedelta(days=1)):
        usage_batch_apply(batch_id=batch.pk)
    results = json.loads(UsageBatch.objects.get(pk=batch.pk).results_json)
    assert results[0]["error"]["code"] == "invalid"
