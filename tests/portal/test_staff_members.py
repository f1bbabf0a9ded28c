"""Staff roles in the city (issue #13 item 5): program managers grant roles at
/<city>/staff/members/ (to an account, or by invitation by e-mail) and revoke them after
a confirmation, through the services, each change an audit event; other staff only
read the page; another city's program manager gets a 404 and changes nothing."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.core import mail

from portal.models import AuditEvent, CityMembership, Role, StaffInvitation, User
from tests.factories import UserFactory

pytestmark = pytest.mark.usefixtures("eager_celery")

MEMBERS = "/shanghai/staff/members/"


@pytest.fixture(autouse=True)
def _english(client):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"


def _roles(user, city) -> set[str]:
    return set(CityMembership.objects.filter(user=user, city=city).values_list("role", flat=True))


def test_a_program_manager_grants_a_role_to_an_account(client, shanghai):
    newcomer = UserFactory(email="expert@univ.edu.cn")
    client.force_login(shanghai.manager)
    response = client.post(
        MEMBERS, {"email": "Expert@Univ.edu.cn", "role": Role.REVIEWER}, REMOTE_ADDR="10.1.2.3"
    )
    assert response.status_code == 302
    assert _roles(newcomer, shanghai.city) == {"reviewer"}
    event = AuditEvent.objects.get(action="membership.grant", city=shanghai.city)
    assert event.actor == shanghai.manager and event.ip == "10.1.2.3"
    assert event.data == {"user": "expert@univ.edu.cn", "role": "reviewer"}
    page = client.get(MEMBERS).content.decode()
    assert "expert@univ.edu.cn" in page


def test_an_address_without_an_account_is_invited_and_accepts(
    client, shanghai, settings, django_capture_on_commit_callbacks
):
    settings.SITE_URL = "https://portal.example.cn"
    client.force_login(shanghai.manager)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(MEMBERS, {"email": "new.approver@sh.gov.cn", "role": Role.APPROVER})
    invitation = StaffInvitation.objects.get(city=shanghai.city)
    assert invitation.email == "new.approver@sh.gov.cn" and invitation.role == "approver"
    assert AuditEvent.objects.filter(action="membership.invite", actor=shanghai.manager).exists()
    (message,) = mail.outbox
    link = f"https://portal.example.cn/shanghai/staff/join/{invitation.token}/"
    assert message.to == ["new.approver@sh.gov.cn"] and link in message.body
    assert "new.approver@sh.gov.cn" in client.get(MEMBERS).content.decode()
    # Someone else signed in cannot use the link; the invitee, once registered, can.
    path = link.removeprefix("https://portal.example.cn")
    someone = UserFactory(email="someone@else.cn")
    client.force_login(someone)
    assert client.post(path).status_code == 404
    assert not CityMembership.objects.filter(user=someone).exists()
    invitee = UserFactory(email="new.approver@sh.gov.cn")
    client.force_login(invitee)
    assert client.get(path).status_code == 200
    assert client.post(path).status_code == 302
    assert _roles(invitee, shanghai.city) == {"approver"}
    grant = AuditEvent.objects.get(action="membership.grant", city=shanghai.city)
    assert grant.actor == invitee and grant.data["invited_by"] == shanghai.manager.email
    assert client.post(path).status_code == 404  # used once


def test_revoking_asks_for_confirmation_and_is_audited(client, shanghai):
    membership = CityMembership.objects.get(user=shanghai.reviewer, city=shanghai.city)
    url = f"/shanghai/staff/members/{membership.pk}/revoke/"
    client.force_login(shanghai.manager)
    page = client.get(MEMBERS).content.decode()
    assert url in page
    confirm = client.get(url)
    assert confirm.status_code == 200 and b'name="confirm"' in confirm.content
    client.post(url)  # not confirmed: nothing happens
    assert CityMembership.objects.filter(pk=membership.pk).exists()
    assert client.post(url, {"confirm": "yes"}, REMOTE_ADDR="10.9.9.9").status_code == 302
    assert not CityMembership.objects.filter(pk=membership.pk).exists()
    event = AuditEvent.objects.get(action="membership.revoke")
    assert event.actor == shanghai.manager and event.ip == "10.9.9.9"
    assert event.data == {"user": shanghai.reviewer.email, "role": "reviewer"}


def test_the_last_program_manager_cannot_be_revoked_by_a_program_manager(client, shanghai):
    membership = CityMembership.objects.get(user=shanghai.manager, role=Role.PROGRAM_MANAGER)
    client.force_login(shanghai.manager)
    client.post(f"/shanghai/staff/members/{membership.pk}/revoke/", {"confirm": "yes"})
    assert CityMembership.objects.filter(pk=membership.pk).exists()
    assert not AuditEvent.objects.filter(action="membership.revoke").exists()


def test_other_staff_read_the_page_but_grant_nothing(client, shanghai):
    membership = CityMembership.objects.get(user=shanghai.reviewer2, city=shanghai.city)
    for user in (shanghai.reviewer, shanghai.approver, shanghai.auditor):
        client.force_login(user)
        page = client.get(MEMBERS)
        assert page.status_code == 200 and b'id="grant"' not in page.content
        assert (
            client.post(MEMBERS, {"email": user.email, "role": Role.PROGRAM_MANAGER}).status_code
            == 403
        )
        response = client.post(
            f"/shanghai/staff/members/{membership.pk}/revoke/", {"confirm": "yes"}
        )
        assert response.status_code == 403
    assert _roles(shanghai.reviewer, shanghai.city) == {"reviewer"}
    assert CityMembership.objects.filter(pk=membership.pk).exists()
    assert not AuditEvent.objects.filter(action__startswith="membership.").exists()


def test_another_citys_program_manager_gets_404_and_changes_nothing(client, shanghai, shenzhen):
    membership = CityMembership.objects.get(user=shanghai.reviewer, city=shanghai.city)
    client.force_login(shenzhen.manager)
    assert client.get(MEMBERS).status_code == 404
    assert (
        client.post(MEMBERS, {"email": shenzhen.manager.email, "role": "approver"}).status_code
        == 404
    )
    for method in (client.get, client.post):
        url = f"/shanghai/staff/members/{membership.pk}/revoke/"
        assert method(url, {"confirm": "yes"}).status_code == 404
    # Nor through their own city's page with a Shanghai membership's id.
    response = client.post(f"/shenzhen/staff/members/{membership.pk}/revoke/", {"confirm": "yes"})
    assert response.status_code == 404
    assert CityMembership.objects.filter(pk=membership.pk).exists()
    assert _roles(shenzhen.manager, shanghai.city) == set()
    assert not AuditEvent.objects.filter(action__startswith="membership.").exists()


def test_an_invitation_is_for_its_city_only(client, shanghai, shenzhen):
    client.force_login(shanghai.manager)
    client.post(MEMBERS, {"email": "x@sh.gov.cn", "role": Role.AUDITOR})
    token = StaffInvitation.objects.get().token
    invitee = UserFactory(email="x@sh.gov.cn")
    client.force_login(invitee)
    assert client.post(f"/shenzhen/staff/join/{token}/").status_code == 404
    assert not CityMembership.objects.filter(user=invitee).exists()


def test_the_members_page_query_count_does_not_grow_with_staff(
    client, shanghai, django_assert_max_num_queries
):
    for i in range(15):
        client.force_login(shanghai.manager)
        client.post(MEMBERS, {"email": f"staff{i}@sh.gov.cn", "role": Role.REVIEWER})
        UserFactory(email=f"user{i}@sh.gov.cn")
        client.post(MEMBERS, {"email": f"user{i}@sh.gov.cn", "role": Role.REVIEWER})
    with django_assert_max_num_queries(14):
        page = client.get(MEMBERS).content.decode()
    assert len(re.findall(r"/revoke/", page)) == 5 + 15
    assert User.objects.filter(email__startswith="staff").count() == 0
