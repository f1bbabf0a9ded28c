"""Data-center, operator and registration changes made in the admin go through the
services and are audited (issue #15); they used to write no audit event at all."""

from __future__ import annotations

from datetime import date

import pytest

from compute.models import DataCenter, Registration, RegistrationStatus
from portal.audit import audit_chain_verify
from portal.models import AuditEvent
from tests.adminform import admin_form
from tests.factories import UserFactory


@pytest.fixture
def platform_admin(db):
    return UserFactory(email="root@platform.test", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_web(client, platform_admin):
    client.force_login(platform_admin)
    return client


def _url(dc: DataCenter) -> str:
    return f"/admin/compute/datacenter/{dc.pk}/change/"


def _events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("pk"))


def test_a_data_center_change_is_audited_without_its_token(admin_web, ledger_world, platform_admin):
    dc = ledger_world.dc
    data = admin_form(
        admin_web, _url(dc), operator_zh="中国移动", feed_token="tok-SECRET-123", is_active=None
    )
    response = admin_web.post(_url(dc), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    dc.refresh_from_db()
    assert dc.operator_zh == "中国移动" and not dc.is_active
    [event] = _events("data_center.update")
    assert event.actor == platform_admin and event.city is None
    assert event.data["changed"] == ["feed_token", "is_active", "operator_zh"]
    assert event.data["values"] == {"is_active": False, "operator_zh": "中国移动"}
    assert "tok-SECRET-123" not in repr(event.data)
    assert audit_chain_verify() == []


def test_operators_granted_and_revoked_in_the_admin_are_audited(admin_web, ledger_world, operator):
    dc = ledger_world.dc
    newcomer = UserFactory(email="new-ops@guian.test")
    data = admin_form(admin_web, _url(dc), operators=[str(newcomer.pk)])
    assert admin_web.post(_url(dc), data).status_code == 302
    assert list(dc.operators.all()) == [newcomer]
    assert [e.data["user"] for e in _events("data_center.operator_grant")] == [newcomer.email]
    assert [e.data["user"] for e in _events("data_center.operator_revoke")] == [operator.email]
    # Operators are not data-center fields: no empty update event.
    assert _events("data_center.update") == []


def test_programs_changed_in_the_admin_are_audited(admin_web, ledger_world):
    dc = ledger_world.dc
    data = admin_form(
        admin_web,
        _url(dc),
        programs=[str(ledger_world.program.pk), str(ledger_world.other_program.pk)],
    )
    assert admin_web.post(_url(dc), data).status_code == 302
    [event] = _events("data_center.programs")
    assert event.data["added"] == [ledger_world.other_program.pk]


def test_a_registration_added_or_suspended_in_the_admin_is_audited(admin_web, ledger_world, world):
    dc, sz = ledger_world.dc, world["shenzhen"].city
    data = admin_form(admin_web, _url(dc))
    n = int(data["registrations-TOTAL_FORMS"][0])
    assert n == 1
    data.update(
        {
            "registrations-0-status": RegistrationStatus.SUSPENDED,
            "registrations-TOTAL_FORMS": "2",
            "registrations-1-city": str(sz.pk),
            "registrations-1-status": RegistrationStatus.ACTIVE,
            "registrations-1-starts_on": "2026-12-01",
            "registrations-1-data_center": str(dc.pk),
        }
    )
    response = admin_web.post(_url(dc), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert Registration.objects.get(data_center=dc, city=sz).starts_on == date(2026, 12, 1)
    assert (
        Registration.objects.get(data_center=dc, city=world["shanghai"].city).status
        == RegistrationStatus.SUSPENDED
    )
    events = {(e.city.slug, e.data["status"]) for e in _events("registration.set")}
    assert events == {("shanghai", "suspended"), ("shenzhen", "active")}
    assert audit_chain_verify() == []


def test_a_data_center_added_in_the_admin_is_audited(admin_web, operator):
    data = admin_form(
        admin_web,
        "/admin/compute/datacenter/add/",
        slug="wuhu",
        name_zh="芜湖集群",
        name_en="Wuhu",
        operator_zh="中国电信",
        operator_en="China Telecom",
        hub="yangtze_delta",
        cluster_zh="芜湖",
        cluster_en="Wuhu",
        operators=[str(operator.pk)],
        **{"registrations-TOTAL_FORMS": "0"},
    )
    response = admin_web.post("/admin/compute/datacenter/add/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    dc = DataCenter.objects.get(slug="wuhu")
    [created] = _events("data_center.create")
    assert created.target_id == str(dc.pk)
    assert [e.data["user"] for e in _events("data_center.operator_grant")] == [operator.email]


def test_data_centers_are_not_deleted_and_keys_are_read_only(admin_web, ledger_world):
    assert (
        admin_web.get(f"/admin/compute/datacenter/{ledger_world.dc.pk}/delete/").status_code == 403
    )
    key = ledger_world.dc.api_keys.first()
    page = admin_web.get(f"/admin/compute/apikey/{key.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
