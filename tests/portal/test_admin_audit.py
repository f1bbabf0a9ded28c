"""Changes made in the admin go through the services and are audited (issue #15): a
staff role granted in a city's page was recorded as `city.update {"changed": []}`."""

from __future__ import annotations

import pytest

from portal.audit import audit_chain_verify
from portal.models import AuditEvent, City, CityMembership, Role, User
from tests.adminform import admin_form
from tests.factories import UserFactory


@pytest.fixture
def platform_admin(db):
    return UserFactory(email="root@platform.test", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_web(client, platform_admin):
    client.force_login(platform_admin)
    return client


def _city_url(city: City) -> str:
    return f"/admin/portal/city/{city.pk}/change/"


def _events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("pk"))


def test_a_role_granted_in_the_city_page_is_a_membership_grant(
    admin_web, shanghai, startup_user, platform_admin
):
    url = _city_url(shanghai.city)
    data = admin_form(admin_web, url)
    n = int(data["memberships-TOTAL_FORMS"][0])
    data.update(
        {
            "memberships-TOTAL_FORMS": str(n + 1),
            f"memberships-{n}-user": str(startup_user.pk),
            f"memberships-{n}-role": Role.APPROVER,
            f"memberships-{n}-city": str(shanghai.city.pk),
        }
    )
    response = admin_web.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert CityMembership.objects.filter(user=startup_user, role=Role.APPROVER).exists()
    [grant] = _events("membership.grant")
    assert grant.city == shanghai.city
    assert grant.actor == platform_admin
    assert grant.data == {"user": startup_user.email, "role": "approver"}
    # Nothing of the city itself changed: no empty city.update.
    assert _events("city.update") == []
    assert audit_chain_verify() == []


def test_a_role_removed_or_changed_in_the_city_page_is_revoked(admin_web, shanghai):
    url = _city_url(shanghai.city)
    data = admin_form(admin_web, url)
    rows = int(data["memberships-TOTAL_FORMS"][0])
    by_user = {data[f"memberships-{i}-user"][0]: i for i in range(rows)}
    gone = by_user[str(shanghai.auditor.pk)]
    moved = by_user[str(shanghai.reviewer2.pk)]
    data[f"memberships-{gone}-DELETE"] = "on"
    data[f"memberships-{moved}-role"] = Role.APPROVER
    assert admin_web.post(url, data).status_code == 302
    assert not CityMembership.objects.filter(user=shanghai.auditor).exists()
    assert list(
        CityMembership.objects.filter(user=shanghai.reviewer2).values_list("role", flat=True)
    ) == [Role.APPROVER]
    revokes = {(e.data["user"], e.data["role"]) for e in _events("membership.revoke")}
    assert revokes == {
        (shanghai.auditor.email, Role.AUDITOR),
        (shanghai.reviewer2.email, Role.REVIEWER),
    }
    grants = [(e.data["user"], e.data["role"]) for e in _events("membership.grant")]
    assert grants == [(shanghai.reviewer2.email, Role.APPROVER)]
    assert audit_chain_verify() == []


def test_a_city_change_names_what_changed(admin_web, shanghai):
    url = _city_url(shanghai.city)
    data = admin_form(admin_web, url, name_en="Shanghai Municipality")
    assert admin_web.post(url, data).status_code == 302
    [event] = _events("city.update")
    assert event.data == {"changed": ["name_en"], "values": {"name_en": "Shanghai Municipality"}}


def test_making_a_user_superuser_is_audited(admin_web, startup_user, platform_admin):
    url = f"/admin/portal/user/{startup_user.pk}/change/"
    data = admin_form(admin_web, url, is_staff="on", is_superuser="on")
    response = admin_web.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    startup_user.refresh_from_db()
    assert startup_user.is_superuser and startup_user.is_staff
    [event] = _events("user.update")
    assert event.actor == platform_admin
    assert event.data["changed"] == ["is_staff", "is_superuser"]
    assert event.data["is_superuser"] is True and event.data["is_staff"] is True
    assert event.city is None


def test_a_password_set_in_the_admin_is_audited(admin_web, startup_user):
    url = f"/admin/portal/user/{startup_user.pk}/password/"
    new = "a-new-long-pass-phrase-77"
    response = admin_web.post(url, {"password1": new, "password2": new, "usable_password": "true"})
    assert response.status_code == 302
    [event] = _events("user.password_set")
    assert event.target_id == str(startup_user.pk)
    assert new not in repr(event.data)


def test_a_user_added_in_the_admin_is_audited(admin_web):
    response = admin_web.post(
        "/admin/portal/user/add/",
        {"email": "new@platform.test", "password1": "x-long-pass-9", "password2": "x-long-pass-9"},
    )
    assert response.status_code == 302
    user = User.objects.get(email="new@platform.test")
    [event] = _events("user.create")
    assert event.target_id == str(user.pk)
    assert "x-long-pass-9" not in repr(event.data)


def test_cities_and_users_are_not_deleted_from_the_admin(admin_web, shanghai, startup_user):
    assert admin_web.get(f"/admin/portal/city/{shanghai.city.pk}/delete/").status_code == 403
    assert admin_web.get(f"/admin/portal/user/{startup_user.pk}/delete/").status_code == 403


def test_staff_without_platform_rights_change_nothing(client, shanghai, startup_user):
    """A platform staff member given the admin's rights on cities and memberships, but
    not a platform admin: the service refuses the grant, and nothing of the save is kept
    (the city's own change neither)."""
    from django.contrib.auth.models import Permission

    clerk = UserFactory(email="clerk@platform.test", is_staff=True)
    clerk.user_permissions.add(
        *Permission.objects.filter(
            codename__in=[
                "change_city",
                "view_city",
                "view_user",
                "add_citymembership",
                "change_citymembership",
                "view_citymembership",
            ]
        )
    )
    client.force_login(clerk)
    url = _city_url(shanghai.city)
    data = admin_form(client, url, name_en="Renamed")
    n = int(data["memberships-TOTAL_FORMS"][0])
    data.update(
        {
            "memberships-TOTAL_FORMS": str(n + 1),
            f"memberships-{n}-user": str(startup_user.pk),
            f"memberships-{n}-role": Role.APPROVER,
            f"memberships-{n}-city": str(shanghai.city.pk),
        }
    )
    before = AuditEvent.objects.count()
    assert client.post(url, data).status_code == 403
    shanghai.city.refresh_from_db()
    assert shanghai.city.name_en == "Shanghai"
    assert not CityMembership.objects.filter(user=startup_user).exists()
    assert AuditEvent.objects.count() == before
