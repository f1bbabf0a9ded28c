import re

from django.core import mail

from portal.models import User


def test_sign_up_requires_email_verification(client, db):
    response = client.post(
        "/accounts/signup/",
        {
            "email": "new@startup.test",
            "password1": "a-long-pass-phrase-42",
            "password2": "a-long-pass-phrase-42",
            "display_name": "新用户",
            "preferred_language": "en",
        },
    )
    assert response.status_code == 302
    user = User.objects.get(email="new@startup.test")
    assert user.display_name == "新用户"
    assert user.preferred_language == "en"
    assert len(mail.outbox) == 1
    # Not verified yet: signing in is refused until the link is followed.
    client.logout()
    client.post(
        "/accounts/login/", {"login": "new@startup.test", "password": "a-long-pass-phrase-42"}
    )
    assert client.get("/accounts/profile/").status_code == 302
    link = re.search(
        r"https?://testserver(/accounts/confirm-email/[^\s]+)", mail.outbox[0].body
    ).group(1)
    client.post(link)
    assert user.emailaddress_set.get().verified


def test_login_with_email_and_logout(client, startup_user):
    response = client.post(
        "/accounts/login/", {"login": startup_user.email, "password": "pw-for-tests"}
    )
    assert response.status_code == 302
    assert client.get("/accounts/profile/").status_code == 200
    client.post("/accounts/logout/")
    assert client.get("/accounts/profile/").status_code == 302


def test_wrong_password_gives_a_form_error(client, startup_user):
    response = client.post("/accounts/login/", {"login": startup_user.email, "password": "nope"})
    assert response.status_code == 200
    assert response.context["form"].errors


def test_password_reset_sends_a_link(client, startup_user):
    client.post("/accounts/password/reset/", {"email": startup_user.email})
    assert len(mail.outbox) == 1
    assert "/accounts/password/reset/key/" in mail.outbox[0].body
