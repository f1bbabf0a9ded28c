"""Refusals carry the error code that says why: the wrong role is `forbidden`, someone
with no part in the city finds the application `not_found` (issue #13's known defects)."""

from __future__ import annotations

import pytest

from portal.errors import DomainError
from tests.vouchers.conftest import complete_draft, into_review
from vouchers import services
from vouchers.models import Application, Objection


@pytest.fixture
def noticed(sz_program, company, startup_user, shenzhen, outsider):
    """A Shenzhen application in public notice with one open objection."""
    app = complete_draft(sz_program, company, startup_user)
    into_review(app, user=startup_user, manager=shenzhen.manager)
    Application.objects.filter(pk=app.pk).update(state="in_notice")
    objection = Objection.objects.create(application=app, raised_by=outsider, text="关联交易")
    return app, objection


@pytest.mark.parametrize("role", ["reviewer", "reviewer2", "auditor"])
def test_resolving_an_objection_without_the_role_is_forbidden(noticed, shenzhen, role):
    _app, objection = noticed
    with pytest.raises(DomainError) as err:
        services.objection_resolve(
            objection=objection, actor=getattr(shenzhen, role), resolution="无关联"
        )
    assert err.value.code == "forbidden"
    objection.refresh_from_db()
    assert objection.resolved_at is None


def test_resolving_an_objection_in_the_wrong_state_is_still_a_conflict(noticed, shenzhen):
    app, objection = noticed
    Application.objects.filter(pk=app.pk).update(state="recommended")
    with pytest.raises(DomainError) as err:
        services.objection_resolve(objection=objection, actor=shenzhen.manager, resolution="x")
    assert err.value.code == "conflict"


@pytest.mark.parametrize("who", ["reviewer", "manager", "outsider"])
def test_assigning_as_someone_outside_the_city_is_not_found(
    sz_program, company, startup_user, shenzhen, shanghai, outsider, who
):
    app = complete_draft(sz_program, company, startup_user)
    into_review(app, user=startup_user, manager=shenzhen.manager)
    actor = outsider if who == "outsider" else getattr(shanghai, who)
    with pytest.raises(DomainError) as err:
        services.review_assign(application=app, actor=actor, reviewer=shenzhen.reviewer)
    assert err.value.code == "not_found"
    assert not app.reviews.exists()


def test_assigning_as_a_reviewer_of_the_city_is_forbidden(
    sz_program, company, startup_user, shenzhen
):
    app = complete_draft(sz_program, company, startup_user)
    into_review(app, user=startup_user, manager=shenzhen.manager)
    with pytest.raises(DomainError) as err:
        services.review_assign(
            application=app, actor=shenzhen.reviewer, reviewer=shenzhen.reviewer2
        )
    assert err.value.code == "forbidden"
    assert not app.reviews.exists()
