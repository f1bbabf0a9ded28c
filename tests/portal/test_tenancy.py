import pytest
from django.urls import reverse

from portal.models import Role
from portal.tenancy import has_role, roles_in_city

STAFF_PAGES = ["portal:staff_home", "portal:staff_members", "portal:audit_log"]


def test_city_home_resolves_the_city_from_the_path(client, shanghai):
    response = client.get("/shanghai/")
    assert response.status_code == 200
    assert response.wsgi_request.city == shanghai.city
    assert "上海市" in response.content.decode()


def test_unknown_city_is_404(client, db):
    assert client.get("/atlantis/").status_code == 404


def test_inactive_city_is_404(client, shanghai):
    shanghai.city.is_active = False
    shanghai.city.save()
    assert client.get("/shanghai/").status_code == 404
    client.force_login(shanghai.manager)
    assert client.get("/shanghai/staff/").status_code == 404


@pytest.mark.parametrize("page", STAFF_PAGES)
def test_anonymous_user_is_sent_to_login(client, shanghai, page):
    response = client.get(reverse(page, args=["shanghai"]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


@pytest.mark.parametrize("page", STAFF_PAGES)
def test_staff_of_another_city_get_404_on_every_staff_page(client, shanghai, shenzhen, page):
    for user in shenzhen.staff():
        client.force_login(user)
        assert client.get(reverse(page, args=["shanghai"])).status_code == 404


@pytest.mark.parametrize("page", STAFF_PAGES)
def test_outsider_and_startup_get_404_on_staff_pages(client, world, page):
    for user in (world["outsider"], world["startup"]):
        client.force_login(user)
        assert client.get(reverse(page, args=["shanghai"])).status_code == 404


def test_every_staff_role_sees_the_dashboard(client, shanghai):
    for user in shanghai.staff():
        client.force_login(user)
        assert client.get("/shanghai/staff/").status_code == 200


def test_audit_trail_is_for_auditors_and_program_managers_only(client, shanghai):
    for user, expected in [
        (shanghai.auditor, 200),
        (shanghai.manager, 200),
        (shanghai.reviewer, 403),
        (shanghai.approver, 403),
    ]:
        client.force_login(user)
        assert client.get("/shanghai/staff/audit/").status_code == expected, user.email


def test_role_checks_are_per_city(shanghai, shenzhen):
    assert has_role(shanghai.reviewer, shanghai.city, Role.REVIEWER)
    assert not has_role(shanghai.reviewer, shanghai.city, Role.APPROVER)
    assert not has_role(shanghai.reviewer, shenzhen.city, Role.REVIEWER)
    assert roles_in_city(shanghai.manager, shenzhen.city) == frozenset()


def test_staff_list_shows_only_own_city_staff(client, shanghai, shenzhen):
    client.force_login(shanghai.auditor)
    body = client.get("/shanghai/staff/members/").content.decode()
    assert "reviewer@shanghai.test" in body
    assert "shenzhen.test" not in body


def test_staff_list_query_count_does_not_grow_with_rows(
    client, shanghai, django_assert_max_num_queries
):
    from tests.factories import MembershipFactory

    client.force_login(shanghai.auditor)
    with django_assert_max_num_queries(12):
        client.get("/shanghai/staff/members/")
    MembershipFactory.create_batch(30, city=shanghai.city, role=Role.REVIEWER)
    with django_assert_max_num_queries(12):
        response = client.get("/shanghai/staff/members/")
    assert response.status_code == 200


def test_city_slug_cannot_shadow_site_paths(db):
    from django.core.exceptions import ValidationError

    from tests.factories import CityFactory

    city = CityFactory.build(slug="admin", code="AD")
    with pytest.raises(ValidationError):
        city.full_clean()
