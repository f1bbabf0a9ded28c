"""What the form fuzzer found (tests/portal/test_form_fuzz.py), each kept as a test."""

from __future__ import annotations

import random

import pytest

from tests.compute.conftest import ledger_world, operator  # noqa: F401 - fixtures
from tests.portal.fuzz.staff_forms import SMALLINT_FIELDS
from tests.vouchers.conftest import (  # noqa: F401 - fixtures
    PDF,
    PNG,
    company,
    complete_draft,
    into_review,
    program_values,
    review_by,
    sh_program,
    sz_program,
)
from vouchers import services
from vouchers.credit_code import credit_code_generate


def test_a_posted_id_of_4301_digits_is_a_404(client, sh_program, company, startup_user):
    client.force_login(startup_user)
    response = client.post(f"/shanghai/programs/{sh_program.slug}/", {"company": "9" * 4301})
    assert response.status_code == 404


def _program_form(client, program) -> dict:
    page = client.get(f"/shanghai/staff/programs/{program.slug}/")
    data = {k: v for k, v in page.context["form"].initial.items() if v is not None}
    data.update({"opens_at": "", "closes_at": "", "reviews_required": "0"})
    for prefix in ("rubric", "docs", "rules"):
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
    return data


def test_a_program_opening_in_year_1_breaks_the_program_lists(client, sh_program, shanghai):
    client.force_login(shanghai.manager)
    data = _program_form(client, sh_program) | {"opens_at": "0001-01-01T00:00"}
    response = client.post(f"/shanghai/staff/programs/{sh_program.slug}/", data)
    assert response.status_code < 500
    assert client.get("/shanghai/programs/").status_code == 200


def test_a_malformed_rubric_saved_without_reviews_breaks_the_staff_page(
    client, sh_program, shanghai, company, startup_user
):
    app = complete_draft(sh_program, company, startup_user)
    services.application_submit(application=app, actor=startup_user)
    client.force_login(shanghai.manager)
    data = _program_form(client, sh_program) | {"rubric-TOTAL_FORMS": "1", "rubric-0-name": "team"}
    client.post(f"/shanghai/staff/programs/{sh_program.slug}/", data)
    assert client.get(f"/shanghai/staff/applications/{app.pk}/").status_code == 200


@pytest.mark.parametrize("field", SMALLINT_FIELDS)
def test_a_number_beyond_a_smallint_in_a_program_is_a_field_error(
    client, sh_program, shanghai, field
):
    client.force_login(shanghai.manager)
    data = _program_form(client, sh_program) | {field: "32768"}
    # reviews need a rubric
    data |= {"rubric-TOTAL_FORMS": "1", "rubric-0-name": "team", "rubric-0-weight": "1"}
    data["rubric-0-max"] = "10"
    response = client.post(f"/shanghai/staff/programs/{sh_program.slug}/", data)
    assert response.status_code == 200
    assert response.context["form"].errors[field]


@pytest.mark.parametrize("page", ["sign-up", "profile"])
def test_a_headcount_beyond_an_integer_is_a_field_error(client, company, startup_user, page):
    client.force_login(startup_user)
    data = {"legal_name": "深度河流科技有限公司", "headcount": str(2**31)}
    if page == "sign-up":
        url, data["credit_code"] = "/company/", credit_code_generate(random.Random(7))
    else:
        url, data["form"] = f"/company/{company.pk}/", "profile"
    response = client.post(url, data)
    assert response.status_code == 200
    assert "headcount" in response.context["form" if page == "sign-up" else "profile"].errors
