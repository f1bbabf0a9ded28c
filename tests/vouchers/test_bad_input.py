"""Ids from forms that are not numbers, or missing: a 404, never a 500, nothing changed."""

from __future__ import annotations

import pytest

from tests.vouchers.conftest import complete_draft
from vouchers import services
from vouchers.models import Application, Objection, Review


@pytest.mark.parametrize("value", ["abc", "", "1e3", "-1", "99999999999999999999"])
def test_non_numeric_ids_in_posts_are_404(
    client, sh_program, company, startup_user, shanghai, outsider, value
):
    app = complete_draft(sh_program, company, startup_user)
    services.application_submit(application=app, actor=startup_user)
    before = Application.objects.count()
    client.force_login(startup_user)
    assert (
        client.post(f"/shanghai/programs/{sh_program.slug}/", {"company": value}).status_code == 404
    )
    client.force_login(shanghai.manager)
    response = client.post(
        "/shanghai/staff/applications/", {"applications": [value], "reviewer": value}
    )
    assert response.status_code == 404
    response = client.post(
        "/shanghai/staff/applications/",
        {"applications": [value, str(app.pk)], "reviewer": shanghai.reviewer.pk},
    )
    assert response.status_code == 302  # the bad id is ignored, the good one assigned
    assert Review.objects.filter(application=app).count() == 1
    client.force_login(outsider)
    assert (
        client.post(
            f"/shanghai/programs/{sh_program.slug}/notice/", {"application": value, "text": "x"}
        ).status_code
        == 404
    )
    assert Application.objects.count() == before
    assert not Objection.objects.exists()
