"""Notifications: one e-mail per member and event, each in the recipient's language,
sent by Celery tasks enqueued after commit (run eagerly here, workflow unit tests)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core import mail
from django.db import transaction
from django.utils import timezone

from portal.errors import DomainError
from tests.factories import UserFactory
from tests.vouchers.conftest import RUBRIC, complete_draft, into_review, program_values, review_by
from vouchers import services
from vouchers.models import Application

pytestmark = pytest.mark.usefixtures("eager_celery")


def _subjects(email: str) -> list[str]:
    return [m.subject for m in mail.outbox if m.to == [email]]


def test_each_event_reaches_every_member_in_their_language(
    sh_program, shenzhen, company, startup_user, django_capture_on_commit_callbacks
):
    startup_user.preferred_language = "zh-hans"
    startup_user.save(update_fields=["preferred_language"])
    english = UserFactory(email="cfo@startup.test", preferred_language="en")
    company.members.add(english)
    sz = services.program_save(
        city=shenzhen.city,
        actor=shenzhen.manager,
        values=program_values(reviews_required=1, rubric=RUBRIC, notice_days=5),
    )
    shenzhen.reviewer.preferred_language = "en"
    shenzhen.reviewer.save(update_fields=["preferred_language"])
    app = complete_draft(sz, company, startup_user)
    with django_capture_on_commit_callbacks(execute=True):
        services.application_submit(application=app, actor=startup_user)
        services.application_start_screening(application=app, actor=shenzhen.manager)
        services.application_request_info(
            application=app, actor=shenzhen.manager, question="请补充合同"
        )
        services.application_answer_info(application=app, actor=english, answer="已补充")
        services.application_pass_screening(application=app, actor=shenzhen.manager)
        services.review_assign(application=app, actor=shenzhen.manager, reviewer=shenzhen.reviewer)
        services.review_declare(application=app, actor=shenzhen.reviewer, conflict=False)
        services.review_submit(
            application=app,
            actor=shenzhen.reviewer,
            scores={"team": 9, "plan": 9},
            comment="ok",
            recommend=True,
        )
    Application.objects.filter(pk=app.pk).update(notice_ends_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        voucher = services.application_approve(
            application=app,
            actor=shenzhen.approver,
            amount=Decimal("300000"),
            reason="Scaled to the plan",
        )

    en = _subjects(english.email)
    assert [s.split(":")[0] for s in en] == [
        "[Suanli] Application received",
        "[Suanli] More information needed",
        "[Suanli] In public notice",
        f"[Suanli] Approved, voucher {voucher.code}",
    ]
    zh = _subjects(startup_user.email)
    assert len(zh) == 4
    assert all("[Suanli]" not in s for s in zh), zh
    assert voucher.code in zh[-1]
    body = next(m.body for m in mail.outbox if m.to == [english.email] and "Approved" in m.subject)
    assert "300,000.00" in body and voucher.valid_until.isoformat() in body
    app.refresh_from_db()
    assert _subjects(shenzhen.reviewer.email) == [f"[Suanli] Please review: {app.title}"]


def test_rejection_and_screening_failure_are_sent_with_the_reason(
    sh_program, shanghai, company, startup_user, django_capture_on_commit_callbacks
):
    startup_user.preferred_language = "en"
    startup_user.save(update_fields=["preferred_language"])
    first = complete_draft(sh_program, company, startup_user)
    with django_capture_on_commit_callbacks(execute=True):
        services.application_submit(application=first, actor=startup_user)
        services.application_start_screening(application=first, actor=shanghai.reviewer)
        services.application_fail_screening(
            application=first, actor=shanghai.reviewer, reason="No contract attached"
        )
        services.application_reject(
            application=first, actor=shanghai.approver, reason="Not eligible this year"
        )
    bodies = {m.subject.split(":")[0]: m.body for m in mail.outbox}
    assert "No contract attached" in bodies["[Suanli] Not recommended"]
    assert "Not eligible this year" in bodies["[Suanli] Not approved"]


def test_nothing_is_sent_when_the_transition_is_rolled_back(
    sh_program, shanghai, company, startup_user, django_capture_on_commit_callbacks
):
    app = complete_draft(sh_program, company, startup_user)
    with django_capture_on_commit_callbacks(execute=True):
        services.application_submit(application=app, actor=startup_user)
    mail.outbox.clear()
    services.application_start_screening(application=app, actor=shanghai.reviewer)
    services.application_pass_screening(application=app, actor=shanghai.reviewer)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(DomainError) as err:
            services.application_approve(
                application=app,
                actor=shanghai.approver,
                amount=Decimal("99999999"),
                reason="Scaled to the plan",
            )
        assert err.value.code == "invalid"
        assert list(err.value.fields) == ["amount"]
        # A step that succeeds inside a transaction which then fails sends nothing either.
        with pytest.raises(RuntimeError, match="later step"), transaction.atomic():
            services.application_approve(
                application=app,
                actor=shanghai.approver,
                amount=Decimal("500000"),
                reason="Scaled to the plan",
            )
            raise RuntimeError("a later step of the same transaction failed")
    assert callbacks == [] and mail.outbox == []
    assert Application.objects.get(pk=app.pk).state == "recommended"


def test_an_invitation_is_sent_in_the_invitees_language_when_known(
    company, startup_user, django_capture_on_commit_callbacks
):
    UserFactory(email="known@startup.test", preferred_language="en")
    with django_capture_on_commit_callbacks(execute=True):
        services.company_invite(company=company, actor=startup_user, email="Known@startup.test")
        services.company_invite(company=company, actor=startup_user, email="new@startup.test")
    subjects = {m.to[0]: m.subject for m in mail.outbox}
    assert subjects["known@startup.test"].startswith("[Suanli] You are invited to join")
    assert "[Suanli]" not in subjects["new@startup.test"]  # the site's language, Chinese
    assert company.legal_name in subjects["new@startup.test"]


def test_an_eligibility_refusal_gives_each_member_the_reasons_in_their_language(
    shanghai, company, startup_user, django_capture_on_commit_callbacks
):
    startup_user.preferred_language = "zh-hans"
    startup_user.save(update_fields=["preferred_language"])
    english = UserFactory(email="coo@startup.test", preferred_language="en")
    company.members.add(english)
    program = services.program_save(
        city=shanghai.city,
        actor=shanghai.manager,
        values=program_values(
            eligibility_rules=[{"type": "max_headcount", "max": 10}], hard_fail_rejects=True
        ),
    )
    app = complete_draft(program, company, startup_user)
    with django_capture_on_commit_callbacks(execute=True):
        services.application_submit(application=app, actor=startup_user)
    app.refresh_from_db()
    assert app.state == "not_recommended"
    bodies = {m.to[0]: m.body for m in mail.outbox}
    assert "More than 10 employees." in bodies[english.email]
    assert "员工超过 10 人。" in bodies[startup_user.email]
    assert "employees" not in bodies[startup_user.email]


def test_a_review_refusal_gives_the_tally_in_each_members_language(
    sz_program, shenzhen, company, startup_user, django_capture_on_commit_callbacks
):
    from django.utils import translation

    startup_user.preferred_language = "en"
    startup_user.save(update_fields=["preferred_language"])
    app = complete_draft(sz_program, company, startup_user)
    into_review(app, user=startup_user, manager=shenzhen.manager)
    with django_capture_on_commit_callbacks(execute=True), translation.override("zh-hans"):
        review_by(
            app,
            manager=shenzhen.manager,
            reviewers=(shenzhen.reviewer, shenzhen.reviewer2),
            scores={"team": 2, "plan": 2},
            comment="",
            recommend=False,
        )
    app.refresh_from_db()
    assert app.state == "not_recommended"
    (body,) = [m.body for m in mail.outbox if m.to == [startup_user.email]]
    text, letter, link = body.split("\n\n")
    assert text.endswith("0 of 2 reviews recommend.")
    assert letter.startswith("The decision letter SZ-")  # attached, in English
    assert link.endswith(f"/company/applications/{app.pk}/")


# --- Notifications that do not mislead (issue #13 item 4) -------------------------------


@time_machine.travel(datetime(2026, 11, 30, 22, 43, tzinfo=UTC), tick=False)
def test_the_notice_email_gives_the_end_in_the_citys_time_across_midnight_utc(
    sz_program, shenzhen, company, startup_user, django_capture_on_commit_callbacks
):
    """Recommended at 22:43 UTC on 30 November with five days of notice: the notice ends
    at 22:43 UTC on 5 December, which is 06:43 on 6 December in Shenzhen. The e-mail
    used to say "2026-12-05", the UTC date."""
    startup_user.preferred_language = "en"
    startup_user.save(update_fields=["preferred_language"])
    app = complete_draft(sz_program, company, startup_user)
    into_review(app, user=startup_user, manager=shenzhen.manager)
    with django_capture_on_commit_callbacks(execute=True):
        review_by(
            app,
            manager=shenzhen.manager,
            reviewers=(shenzhen.reviewer, shenzhen.reviewer2),
            scores={"team": 8, "plan": 8},
        )
    app.refresh_from_db()
    assert app.notice_ends_at == datetime(2026, 12, 5, 22, 43, tzinfo=UTC)
    (body,) = [
        m.body for m in mail.outbox if m.to == [startup_user.email] and "notice" in m.subject
    ]
    assert "until 2026-12-06 06:43 (Asia/Shanghai)." in body
    assert "2026-12-05" not in body


@time_machine.travel(datetime(2026, 11, 30, 22, 43, tzinfo=UTC), tick=False)
def test_the_chinese_notice_email_names_the_time_zone_too(
    sz_program, shenzhen, company, startup_user, django_capture_on_commit_callbacks
):
    app = complete_draft(sz_program, company, startup_user)
    into_review(app, user=startup_user, manager=shenzhen.manager)
    with django_capture_on_commit_callbacks(execute=True):
        review_by(
            app,
            manager=shenzhen.manager,
            reviewers=(shenzhen.reviewer, shenzhen.reviewer2),
            scores={"team": 8, "plan": 8},
        )
    (body,) = [m.body for m in mail.outbox if m.to == [startup_user.email] and "公示" in m.subject]
    assert "2026-12-06 06:43 (Asia/Shanghai)" in body


def test_every_email_links_to_the_page_to_act_on_at_site_url(
    settings,
    sz_program,
    shenzhen,
    company,
    startup_user,
    outsider,
    django_capture_on_commit_callbacks,
):
    settings.SITE_URL = "https://suanli.example.cn:8443/"
    app = complete_draft(sz_program, company, startup_user)
    base = "https://suanli.example.cn:8443"
    with django_capture_on_commit_callbacks(execute=True):
        into_review(app, user=startup_user, manager=shenzhen.manager)
        review_by(
            app,
            manager=shenzhen.manager,
            reviewers=(shenzhen.reviewer, shenzhen.reviewer2),
            scores={"team": 8, "plan": 8},
        )
        objection = services.objection_raise(
            application=Application.objects.get(pk=app.pk), actor=outsider, text="与供应商有关联"
        )
    Application.objects.filter(pk=app.pk).update(notice_ends_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        services.objection_resolve(
            objection=objection, actor=shenzhen.manager, resolution="核查无关联"
        )
        services.application_approve(
            application=Application.objects.get(pk=app.pk),
            actor=shenzhen.approver,
            amount=Decimal("300000"),
            reason="Scaled to the plan",
        )
    company_page = f"{base}/company/applications/{app.pk}/"
    staff_page = f"{base}/shenzhen/staff/applications/{app.pk}/"
    by_recipient: dict[str, list[str]] = {}
    for message in mail.outbox:
        by_recipient.setdefault(message.to[0], []).append(message.body)
    assert len(by_recipient[startup_user.email]) == 3  # received, in notice, approved
    assert all(company_page in body for body in by_recipient[startup_user.email])
    for reviewer in (shenzhen.reviewer, shenzhen.reviewer2):
        (body,) = by_recipient[reviewer.email]
        assert staff_page in body
    (body,) = by_recipient[outsider.email]
    assert f"{base}/shenzhen/programs/{sz_program.slug}/notice/" in body
    assert all("127.0.0.1" not in m.body for m in mail.outbox)


def test_the_objector_is_told_the_outcome_in_their_language_with_the_citys_time(
    sz_program, shenzhen, company, startup_user, django_capture_on_commit_callbacks
):
    objector = UserFactory(email="citizen@example.cn", preferred_language="en")
    app = complete_draft(sz_program, company, startup_user)
    into_review(app, user=startup_user, manager=shenzhen.manager)
    review_by(
        app,
        manager=shenzhen.manager,
        reviewers=(shenzhen.reviewer, shenzhen.reviewer2),
        scores={"team": 8, "plan": 8},
    )
    with time_machine.travel(datetime(2026, 12, 1, 17, 5, tzinfo=UTC), tick=False):
        objection = services.objection_raise(
            application=Application.objects.get(pk=app.pk), actor=objector, text="关联交易"
        )
    mail.outbox.clear()
    with (
        time_machine.travel(datetime(2026, 12, 1, 16, 30, tzinfo=UTC) + timedelta(hours=1)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        services.objection_resolve(
            objection=objection, actor=shenzhen.approver, resolution="经核查，不存在关联交易。"
        )
    (message,) = mail.outbox
    assert message.to == [objector.email]
    assert message.subject == "[Suanli] Your objection was answered: 多模态大模型训练"
    assert "经核查，不存在关联交易。" in message.body
    # 17:05 UTC on 1 December is 01:05 on the 2nd in Shenzhen.
    assert "of 2026-12-02 01:05 (Asia/Shanghai)" in message.body
    assert "at 2026-12-02 01:30 (Asia/Shanghai)" in message.body


def test_reminders_give_city_dates_and_links(settings, sz_program, shenzhen, company, startup_user):
    from vouchers.jobs import reminders_send

    settings.SITE_URL = "http://demo.test:8765"
    shenzhen.reviewer.preferred_language = "en"
    shenzhen.reviewer.save(update_fields=["preferred_language"])
    app = complete_draft(sz_program, company, startup_user)
    into_review(app, user=startup_user, manager=shenzhen.manager)
    services.review_assign(application=app, actor=shenzhen.manager, reviewer=shenzhen.reviewer)
    app.reviews.update(assigned_at=datetime(2026, 11, 20, 20, 0, tzinfo=UTC))
    mail.outbox.clear()
    with time_machine.travel(datetime(2026, 12, 1, 1, 0, tzinfo=UTC), tick=False):
        reminders_send()
    (body,) = [m.body for m in mail.outbox if m.to == [shenzhen.reviewer.email]]
    assert "since 2026-11-21 04:00 (Asia/Shanghai)" in body
    assert f"http://demo.test:8765/shenzhen/staff/applications/{app.pk}/" in body


def test_make_demo_sets_site_url_to_its_own_port(monkeypatch):
    """`make demo` runs scripts/devservices.py demo: every process it starts has SITE_URL
    pointing at the port it serves on, unless SITE_URL was set."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "devservices.py"
    spec = importlib.util.spec_from_file_location("devservices_under_test", path)
    devservices = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(devservices)
    started: list[dict] = []

    class FakeServices:
        def __init__(self, *, app_role=False):
            self.env = {"PATH": "/usr/bin"}

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def call(self, *args):
            started.append(dict(self.env))
            return 0

    class FakeProcess:
        returncode = 0
        pid = 0

        def __init__(self, cmd, env, **kwargs):
            started.append(dict(env))

        def poll(self):
            return 0

        def wait(self, timeout=None):
            return 0

    monkeypatch.setattr(devservices, "Services", FakeServices)
    monkeypatch.setattr(devservices.subprocess, "Popen", FakeProcess)
    monkeypatch.setattr(devservices.signal, "signal", lambda *a: None)
    monkeypatch.setenv("PORT", "8123")
    devservices.demo()
    assert started and all(env["SITE_URL"] == "http://127.0.0.1:8123" for env in started)


def test_a_one_review_refusal_tallies_in_the_singular(
    sz_program, shenzhen, company, startup_user, django_capture_on_commit_callbacks
):
    """The e-mail's tally agrees with its number of reviews, as the timeline's does."""
    sz_program.reviews_required = 1
    sz_program.save(update_fields=["reviews_required"])
    startup_user.preferred_language = "en"
    startup_user.save(update_fields=["preferred_language"])
    app = complete_draft(sz_program, company, startup_user)
    into_review(app, user=startup_user, manager=shenzhen.manager)
    with django_capture_on_commit_callbacks(execute=True):
        review_by(
            app,
            manager=shenzhen.manager,
            reviewers=(shenzhen.reviewer,),
            scores={"team": 2, "plan": 2},
            comment="",
            recommend=False,
        )
    app.refresh_from_db()
    assert app.state == "not_recommended"
    assert app.timeline.last().note == "0 of 1 review recommends."
    (body,) = [m.body for m in mail.outbox if m.to == [startup_user.email]]
    assert body.split("\n\n")[0].endswith("0 of 1 review recommends.")
