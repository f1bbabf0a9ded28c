"""In-portal notifications (issue #13 item 6): made wherever an e-mail is sent, listed
per user (another user's is a 404), counted unread in the header, marked read one by
one or all at once, paged; e-mail per kind can be turned off on the profile page, the
in-portal entry stays."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import translation

from portal import notifications
from portal.errors import DomainError
from portal.models import Notification, User
from tests.factories import UserFactory
from tests.vouchers.conftest import complete_draft
from vouchers import services
from vouchers.models import Objection

pytestmark = pytest.mark.usefixtures("eager_celery")


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


def _notify(user: User, n: int = 1, kind: str = "application") -> None:
    for i in range(n):
        notifications.notify(
            user=user, kind=kind, subject=f"Subject {i}", body=f"Body {i}", path="/company/"
        )


def test_the_list_is_per_user_and_another_users_entry_is_a_404(client, db):
    alice, bob = UserFactory(), UserFactory()
    _notify(alice)
    _notify(bob)
    theirs = Notification.objects.get(user=bob)
    client.force_login(alice)
    page = client.get(reverse("portal:notifications")).content.decode()
    assert "Subject 0" in page and page.count('class="unread"') == 1
    response = client.post(reverse("portal:notification_read", args=[theirs.pk]))
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.read_at is None
    assert User.objects.get(pk=bob.pk).unread_notifications == 1


def test_unread_count_in_the_header_and_marking_read(client, db, settings):
    user = UserFactory()
    _notify(user, 3)
    client.force_login(user)
    header = client.get(reverse("portal:profile")).content.decode()
    assert 'id="notifications-link"' in header and "<mark" in header and ">3</mark>" in header
    first = Notification.objects.filter(user=user).last()
    response = client.post(reverse("portal:notification_read", args=[first.pk]), {"open": "1"})
    assert response.status_code == 302 and response["Location"] == "/company/"
    # Twice read is still one read.
    client.post(reverse("portal:notification_read", args=[first.pk]))
    assert User.objects.get(pk=user.pk).unread_notifications == 2
    client.post(reverse("portal:notifications_read_all"))
    assert User.objects.get(pk=user.pk).unread_notifications == 0
    assert not Notification.objects.filter(user=user, read_at__isnull=True).exists()
    assert "<mark" not in client.get(reverse("portal:profile")).content.decode()


def test_the_write_services_take_the_acting_user_as_actor(db):
    """Write services name the acting user `actor` (issue #18): here the reader, who may
    change only their own rows."""
    alice, bob = UserFactory(), UserFactory()
    _notify(alice, 2)
    _notify(bob)
    theirs = Notification.objects.get(user=bob)
    with pytest.raises(DomainError) as refused:
        notifications.notification_read(actor=alice, notification=theirs)
    assert refused.value.code == "not_found"
    assert User.objects.get(pk=bob.pk).unread_notifications == 1
    mine = Notification.objects.filter(user=alice).first()
    notifications.notification_read(actor=alice, notification=mine)
    assert User.objects.get(pk=alice.pk).unread_notifications == 1
    assert notifications.notification_read_all(actor=alice) == 1
    assert User.objects.get(pk=alice.pk).unread_notifications == 0
    assert User.objects.get(pk=bob.pk).unread_notifications == 1
    kinds = sorted(notifications.KINDS)
    assert kinds, "no notification kinds registered"
    off = notifications.notification_settings_save(actor=alice, email_kinds=kinds[1:])
    assert off == [kinds[0]] and User.objects.get(pk=alice.pk).email_off == [kinds[0]]
    assert User.objects.get(pk=bob.pk).email_off == []


def test_the_list_is_paged(client, db, django_assert_max_num_queries):
    user = UserFactory()
    _notify(user, 25)
    client.force_login(user)
    with django_assert_max_num_queries(8):
        first = client.get(reverse("portal:notifications")).content.decode()
    assert first.count("<li") - first.count('<li class="unread"') >= 0
    assert "Subject 24" in first and "Subject 0" not in first
    second = client.get(reverse("portal:notifications") + "?page=2").content.decode()
    assert "Subject 0" in second and "Subject 24" not in second


def test_every_email_links_to_the_page_from_site_url(db, settings):
    settings.SITE_URL = "http://portal.example:8123"
    user = UserFactory()
    _notify(user)
    assert mail.outbox[-1].body.endswith("On the portal: http://portal.example:8123/company/")


def test_opting_out_stops_the_email_not_the_entry(
    client, sh_program, company, startup_user, shanghai, django_capture_on_commit_callbacks
):
    client.force_login(startup_user)
    page = client.get(reverse("portal:profile")).content.decode()
    assert 'name="email" value="application" checked' in page
    # Keep e-mail for vouchers only.
    client.post(reverse("portal:notification_settings"), {"email": ["voucher"]})
    startup_user.refresh_from_db()
    assert "application" in startup_user.email_off and "voucher" not in startup_user.email_off
    app = complete_draft(sh_program, company, startup_user)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.application_submit(application=app, actor=startup_user)
    assert [m for m in mail.outbox if startup_user.email in m.to] == []
    entry = Notification.objects.get(user=startup_user, kind="application")
    assert entry.path == reverse("vouchers:application", args=[app.pk])
    # Back on: the next step's e-mail comes again.
    client.post(reverse("portal:notification_settings"), {"email": ["application", "voucher"]})
    services.application_start_screening(application=app, actor=shanghai.manager)
    with django_capture_on_commit_callbacks(execute=True):
        services.application_fail_screening(
            application=app, actor=shanghai.manager, reason="Licence expired"
        )
    (message,) = [m for m in mail.outbox if startup_user.email in m.to]
    # The not-recommended decision's letter comes with it.
    ((name, content, content_type),) = message.attachments
    assert content_type == "application/pdf" and content.startswith(b"%PDF")
    assert name == f"{app.letters.get().number}.pdf"
    assert Notification.objects.filter(user=startup_user).count() == 2


def test_the_objector_is_told_the_resolution_in_the_portal(
    sh_program, company, startup_user, shanghai, outsider, django_capture_on_commit_callbacks
):
    app = complete_draft(sh_program, company, startup_user)
    services.application_submit(application=app, actor=startup_user)
    objection = Objection.objects.create(application=app, raised_by=outsider, text="Related")
    type(app).objects.filter(pk=app.pk).update(state="in_notice")
    with django_capture_on_commit_callbacks(execute=True):
        services.objection_resolve(
            objection=objection, actor=shanghai.manager, resolution="Not related"
        )
    entry = Notification.objects.get(user=outsider)
    assert entry.kind == "objection" and "Not related" in entry.body
    assert entry.path == reverse("vouchers:notice", args=["shanghai", sh_program.slug])


def test_award_notification_asks_for_acceptance(
    shanghai, company, startup_user, django_capture_on_commit_callbacks
):
    from tests.vouchers.conftest import program_values

    program = services.program_save(
        city=shanghai.city,
        actor=shanghai.manager,
        values=program_values(slug="accept", acceptance_days=10),
    )
    app = complete_draft(program, company, startup_user)
    services.application_submit(application=app, actor=startup_user)
    services.application_start_screening(application=app, actor=shanghai.manager)
    services.application_pass_screening(application=app, actor=shanghai.manager)
    with django_capture_on_commit_callbacks(execute=True):
        services.application_approve(
            application=app, actor=shanghai.approver, amount=Decimal("300000"), reason="Scope"
        )
    entry = Notification.objects.filter(user=startup_user).order_by("-id").first()
    assert "¥300,000.00" in entry.subject and "(Asia/Shanghai)" in entry.body
    assert mail.outbox[-1].attachments  # the approval letter
