"""Two-factor sign-in (issue #15 item 1): city staff, platform admins and data-center
operators must enrol a second factor at their next sign-in and use it at every sign-in
after; company users may. Every test here has the real checks (`auth_enforced`), not
the suite's force_login shortcut."""

from __future__ import annotations

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP
from django.test import Client

from portal.models import AuditEvent, CityMembership, Role
from portal.twofactor import MFAAdapter
from tests.factories import DataCenterFactory, UserFactory
from tests.mfa import totp_code

pytestmark = pytest.mark.auth_enforced

PASSWORD = "pw-for-tests"
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def password_step(client: Client, email: str, next_: str = "") -> object:
    url = "/accounts/login/" + (f"?next={next_}" if next_ else "")
    return client.post(url, {"login": email, "password": PASSWORD})


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.fixture
def platform_admin(db):
    return UserFactory(email="root@platform.test", is_staff=True, is_superuser=True)


# --- enrolment forced -----------------------------------------------------------------


def test_city_staff_land_on_enrolment_and_reach_no_staff_page_until_enrolled(
    client, shanghai, django_capture_on_commit_callbacks
):
    manager = shanghai.manager
    response = password_step(client, manager.email)
    assert signed_in(client)  # the password step alone signs in: then enrolment
    response = client.get(response["Location"])
    assert response.status_code == 302
    assert response["Location"] == "/accounts/2fa/"
    for url in ["/shanghai/staff/", "/shanghai/staff/members/", "/shanghai/staff/audit/"]:
        response = client.get(url)
        assert (response.status_code, response["Location"]) == (302, "/accounts/2fa/"), url
    # Nor do they act: a role grant posted now is not carried out.
    response = client.post(
        "/shanghai/staff/members/", {"email": "new@shanghai.test", "role": Role.REVIEWER}
    )
    assert response["Location"] == "/accounts/2fa/"
    assert not CityMembership.objects.filter(user__email="new@shanghai.test").exists()
    # The enrolment page explains why.
    page = client.get("/accounts/2fa/", follow=True).content.decode()
    assert "two-factor" in page.lower() or "双因素" in page

    # Enrol an authenticator app: the page shows the secret; a code from it activates.
    page = client.get("/accounts/2fa/totp/activate/")
    assert page.status_code == 200  # no second password prompt right after signing in
    secret = page.context["form"].secret
    # allauth announces the new authenticator once its transaction commits.
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/accounts/2fa/totp/activate/", {"code": totp_code(secret)})
    assert response.status_code == 302
    assert Authenticator.objects.filter(user=manager, type=Authenticator.Type.TOTP).exists()
    assert client.get("/shanghai/staff/").status_code == 200
    events = AuditEvent.objects.filter(action="user.mfa_added", actor=manager)
    assert sorted(e.data["type"] for e in events) == ["recovery_codes", "totp"]


def test_enrolment_rejects_a_wrong_code(client, shanghai):
    password_step(client, shanghai.approver.email)
    client.get("/accounts/2fa/totp/activate/")
    client.post("/accounts/2fa/totp/activate/", {"code": "000000"})
    assert not Authenticator.objects.filter(user=shanghai.approver).exists()
    assert client.get("/shanghai/staff/").status_code == 302


def test_operators_and_platform_admins_are_made_to_enrol(client, platform_admin):
    dc = DataCenterFactory(slug="guian")
    operator = UserFactory(email="ops@guian.test")
    dc.operators.add(operator)
    password_step(client, operator.email)
    assert client.get("/dc/guian/")["Location"] == "/accounts/2fa/"
    admin = Client()
    password_step(admin, platform_admin.email, "/admin/")
    assert admin.get("/admin/")["Location"] == "/accounts/2fa/"


def test_company_users_are_not_made_to_enrol(client, startup_user):
    password_step(client, startup_user.email)
    assert signed_in(client)
    assert client.get("/company/").status_code == 200
    assert client.get("/my/vouchers/").status_code == 200


def test_a_company_user_who_enrolled_is_asked_for_the_code(client, startup_user):
    TOTP.activate(startup_user, SECRET)
    response = password_step(client, startup_user.email)
    assert response["Location"] == "/accounts/2fa/authenticate/"
    assert not signed_in(client)
    client.post("/accounts/2fa/authenticate/", {"code": totp_code(SECRET)})
    assert signed_in(client)


# --- signing in with the second factor --------------------------------------------------


def test_totp_sign_in(client, shanghai):
    approver = shanghai.approver
    TOTP.activate(approver, SECRET)
    response = password_step(client, approver.email, "/shanghai/staff/")
    assert response["Location"] == "/accounts/2fa/authenticate/"
    assert not signed_in(client)
    assert client.get("/shanghai/staff/").status_code == 302  # to sign in, not the page
    response = client.post("/accounts/2fa/authenticate/", {"code": totp_code(SECRET)})
    assert response["Location"] == "/shanghai/staff/"
    assert client.get("/shanghai/staff/").status_code == 200


def test_a_code_is_good_once(client, shanghai):
    TOTP.activate(shanghai.approver, SECRET)
    code = totp_code(SECRET)
    password_step(client, shanghai.approver.email)
    client.post("/accounts/2fa/authenticate/", {"code": code})
    assert signed_in(client)
    other = Client()
    password_step(other, shanghai.approver.email)
    other.post("/accounts/2fa/authenticate/", {"code": code})
    assert not signed_in(other)


def test_recovery_code_sign_in_and_each_code_once(client, shanghai):
    reviewer = shanghai.reviewer
    TOTP.activate(reviewer, SECRET)
    code = RecoveryCodes.activate(reviewer).get_unused_codes()[0]
    password_step(client, reviewer.email)
    client.post("/accounts/2fa/authenticate/", {"code": code})
    assert signed_in(client)
    assert client.get("/shanghai/staff/").status_code == 200
    again = Client()
    password_step(again, reviewer.email)
    again.post("/accounts/2fa/authenticate/", {"code": code})
    assert not signed_in(again)


def test_wrong_codes_lock_the_account_out(shanghai):
    """Five wrong codes in 15 minutes (the failed-login limit by account) and even the
    right code is refused, from another address too."""
    approver = shanghai.approver
    TOTP.activate(approver, SECRET)
    attacker = Client(REMOTE_ADDR="203.0.113.50")
    for _ in range(5):
        password_step(attacker, approver.email)
        response = attacker.post("/accounts/2fa/authenticate/", {"code": "123456"})
        assert not signed_in(attacker)
    owner = Client(REMOTE_ADDR="198.51.100.50")
    password_step(owner, approver.email)
    response = owner.post("/accounts/2fa/authenticate/", {"code": totp_code(SECRET)})
    assert not signed_in(owner)
    assert response.context["form"].has_error("code", code="too_many_login_attempts")


def test_admin_signs_in_through_the_same_flow(client, platform_admin):
    TOTP.activate(platform_admin, SECRET)
    response = client.get("/admin/", follow=True)
    assert response.redirect_chain[-1][0] == "/accounts/login/?next=/admin/"
    response = password_step(client, platform_admin.email, "/admin/")
    assert response["Location"] == "/accounts/2fa/authenticate/"
    assert client.get("/admin/").status_code == 302
    response = client.post("/accounts/2fa/authenticate/", {"code": totp_code(SECRET)})
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_a_session_that_skipped_the_second_factor_is_signed_out(client, shanghai):
    """An enrolled user's session that never passed the code (here: force_login, as a
    session signed in before the user enrolled elsewhere would be) is ended."""
    TOTP.activate(shanghai.manager, SECRET)
    client.force_login(shanghai.manager)
    response = client.get("/shanghai/staff/")
    assert response["Location"] == "/accounts/login/?next=/shanghai/staff/"
    assert not signed_in(client)
    # Nor may it manage the authenticators (it could swap them for its own).
    client.force_login(shanghai.manager)
    response = client.get("/accounts/2fa/webauthn/add/")
    assert response["Location"].startswith("/accounts/login/")
    assert not signed_in(client)


def test_a_privileged_user_keeps_a_last_authenticator_app(shanghai, startup_user):
    adapter = MFAAdapter()
    staff_totp = TOTP.activate(shanghai.manager, SECRET).instance
    assert not adapter.can_delete_authenticator(staff_totp)
    Authenticator.objects.create(
        user=shanghai.manager, type=Authenticator.Type.WEBAUTHN, data={"credential": {}}
    )
    assert adapter.can_delete_authenticator(staff_totp)  # a passkey remains
    company_totp = TOTP.activate(startup_user, SECRET).instance
    assert adapter.can_delete_authenticator(company_totp)


def test_removing_an_authenticator_is_audited(client, startup_user):
    """(Removing asks for no second password: signing in a moment ago counts.)"""
    TOTP.activate(startup_user, SECRET)
    password_step(client, startup_user.email)
    client.post("/accounts/2fa/authenticate/", {"code": totp_code(SECRET)})
    response = client.post("/accounts/2fa/totp/deactivate/")
    assert response.status_code == 302
    assert not Authenticator.objects.filter(user=startup_user).exists()
    assert AuditEvent.objects.filter(action="user.mfa_removed", actor=startup_user).exists()


def test_demo_staff_sign_in_with_the_secret_the_readme_publishes(client, db):
    from portal.demo import seed_portal

    seed_portal()
    email = "approver@beijing.demo.suanli.cn"
    response = client.post(
        "/accounts/login/?next=/beijing/staff/", {"login": email, "password": "suanli-demo-2026"}
    )
    assert response["Location"] == "/accounts/2fa/authenticate/"
    client.post(
        "/accounts/2fa/authenticate/", {"code": totp_code("SUANLIDEMOTWOFACTORSECRETKEYABCD")}
    )
    assert client.get("/beijing/staff/").status_code == 200
    assert Authenticator.objects.filter(
        user__email="admin@demo.suanli.cn", type=Authenticator.Type.TOTP
    ).exists()
    assert not Authenticator.objects.filter(user__email="founder@zhipu-demo.cn").exists()
