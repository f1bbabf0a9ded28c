"""Celery tasks of the vouchers app: the application workflow's notifications, sent after
the change commits, each in the recipient's language; and the periodic jobs of
vouchers/jobs.py (expiry, reminders), which beat starts."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _

from portal.citytime import city_date, city_datetime
from portal.http import absolute_url
from portal.models import Role, User
from portal.notifications import notify
from vouchers.jobs import (
    awards_lapse_due,
    outcome_reminders_send,
    reminders_send,
    vouchers_expire_due,
)
from vouchers.models import (
    REVIEW_STATES,
    Application,
    ApplicationState,
    CompanyInvitation,
    DecisionLetter,
    EligibilityResult,
    LetterKind,
    Objection,
    OutcomeChange,
    OutcomeReport,
    Review,
    StateChange,
)
from vouchers.notes import tally_text


def _texts(event: str) -> tuple[str, str]:
    # Listed here in full so that makemessages finds every message.
    return {
        "submitted": (
            _("[Suanli] Application received: %(title)s"),
            _("We received your application to %(program)s. City staff will screen it."),
        ),
        "info_requested": (
            _("[Suanli] More information needed: %(title)s"),
            _("City staff ask: %(question)s\n\nAnswer on the application's page."),
        ),
        "recommended": (
            _("[Suanli] Recommended: %(title)s"),
            _("Your application to %(program)s is recommended; an approver decides next."),
        ),
        "in_notice": (
            _("[Suanli] In public notice: %(title)s"),
            _(
                "Your application to %(program)s is recommended and in public notice "
                "until %(until)s."
            ),
        ),
        "not_recommended": (
            _("[Suanli] Not recommended: %(title)s"),
            _("Your application to %(program)s is not recommended: %(reason)s"),
        ),
        "approved": (
            _("[Suanli] Approved, voucher %(voucher)s: %(title)s"),
            _("Approved: ¥%(amount)s. Your voucher is %(voucher)s, valid until %(valid_until)s."),
        ),
        "awarded": (
            _("[Suanli] Awarded ¥%(amount)s, please accept: %(title)s"),
            _(
                "Your application to %(program)s is approved with an award of ¥%(amount)s "
                "(you requested ¥%(requested)s). %(reason)s\n\nAccept or decline the award "
                "by %(accept_by)s; the voucher is issued when you accept."
            ),
        ),
        "declined": (
            _("[Suanli] Award declined: %(title)s"),
            _(
                "The award of ¥%(amount)s for your application to %(program)s was declined; "
                "the amount returned to the program's budget."
            ),
        ),
        "lapsed": (
            _("[Suanli] Award lapsed: %(title)s"),
            _(
                "The award of ¥%(amount)s for your application to %(program)s was not "
                "accepted by %(accept_by)s and has lapsed; the amount returned to the "
                "program's budget."
            ),
        ),
        "rejected": (
            _("[Suanli] Not approved: %(title)s"),
            _("Your application to %(program)s was not approved: %(reason)s"),
        ),
        "tie_break": (
            _("[Suanli] Tie-break needed: %(title)s"),
            _(
                "The reviews of application %(id)s to %(program)s are evenly split "
                "(%(reason)s). Add a reviewer or decide the recommendation, with a reason."
            ),
        ),
        "objection_resolved": (
            _("[Suanli] Your objection was answered: %(title)s"),
            _(
                "Your objection of %(raised)s to the application of %(company)s to "
                "%(program)s was resolved by the city at %(resolved)s:\n\n%(resolution)s"
            ),
        ),
    }[event]


# The decisions whose message carries their letter.
LETTER_EVENTS = {
    "approved": LetterKind.APPROVAL,
    "awarded": LetterKind.APPROVAL,
    "rejected": LetterKind.REJECTION,
    "not_recommended": LetterKind.NOT_RECOMMENDED,
}


# Events for the city's staff rather than the company: the role told.
STAFF_EVENTS = {"tie_break": Role.PROGRAM_MANAGER}


@shared_task(acks_late=True, time_limit=120, soft_time_limit=110)
def application_notify(
    application_id: int,
    event: str,
    change_id: int | None = None,
    objection_id: int | None = None,
) -> int:
    """Tell the parties of an application about an event, each in their language: the
    company's members about its state changes, the city's program managers about a
    tie-break, an objector about their objection's resolution (`objection_id`). The
    reason or question comes from the change itself (`change_id`), so a later step
    cannot leak into this message. Dates and times are the city's, the zone named, and
    every message links to the page to act on."""
    application = Application.objects.select_related("program", "company", "city").get(
        pk=application_id
    )
    city = application.city
    voucher = getattr(application, "voucher", None) if event == "approved" else None
    change = (
        StateChange.objects.filter(pk=change_id, application=application)
        .values("note", "from_state", "actor_label")
        .first()
        if change_id
        else None
    )
    note = change["note"] if change else None
    # Refused at submission by the eligibility rules: the reasons are the failed rules,
    # whose messages exist in both languages, so each member reads them in theirs.
    failed_rules = (
        list(application.eligibility_outcomes.filter(outcome=EligibilityResult.FAIL))
        if change and change["from_state"] == ApplicationState.DRAFT
        else []
    )
    # Concluded by the reviews (not recommended, or split): the tally, in each reader's
    # language (the stored note is in the language of the reviewer who happened to
    # submit last). A program manager's tie-break decision keeps its own reason.
    reviews_tally = None
    if (
        change
        and change["from_state"] in REVIEW_STATES
        and change["actor_label"] == "system"
        and event in ("not_recommended", "tie_break")
    ):
        done = application.reviews.filter(submitted_at__isnull=False, conflict=False)
        reviews_tally = {"yes": done.filter(recommend=True).count(), "n": done.count()}
    question = (
        note
        if note is not None and event == "info_requested"
        else application.info_requests.order_by("-asked_at")
        .values_list("question", flat=True)
        .first()
    )
    reason = (
        note
        if note is not None and event in ("not_recommended", "rejected")
        else application.award_reason
        if event == "awarded"
        else application.decision_reason
    )
    objection = None
    path = reverse("vouchers:application", args=[application.pk])
    if event in STAFF_EVENTS:
        recipients = User.objects.filter(
            is_active=True,
            memberships__city_id=application.city_id,
            memberships__role=STAFF_EVENTS[event],
        ).distinct()
        path = reverse("vouchers:staff_application", args=[city.slug, application.pk])
    elif event == "objection_resolved":
        objection = Objection.objects.select_related("raised_by").get(  # type: ignore[misc]
            pk=objection_id, application=application
        )
        recipients = [objection.raised_by] if objection.raised_by.is_active else []  # type: ignore[assignment]
        path = reverse("vouchers:notice", args=[city.slug, application.program.slug])
    else:
        recipients = application.company.members.filter(is_active=True)
    # The decision's letter (issued in the decision's transaction), attached for the
    # company's members.
    letter = None
    if event in LETTER_EVENTS and event not in STAFF_EVENTS:
        letter = (
            DecisionLetter.objects.filter(application=application, kind=LETTER_EVENTS[event])
            .order_by("-id")
            .first()
        )
    attachments = [(f"{letter.number}.pdf", bytes(letter.pdf), "application/pdf")] if letter else []
    kind = (
        "tie_break"
        if event in STAFF_EVENTS
        else "objection"
        if event == "objection_resolved"
        else "application"
    )
    sent = 0
    for user in recipients:
        with translation.override(user.preferred_language):
            subject, body = _texts(event)
            if failed_rules:
                reason = "; ".join(o.message for o in failed_rules)
            elif reviews_tally:
                reason = tally_text(**reviews_tally)
            values = {
                "id": application.pk,
                "title": application.title,
                "program": application.program.name,
                "company": application.company.legal_name,
                "question": question or "",
                "reason": reason,
                "until": city_datetime(application.notice_ends_at, city),
                "voucher": voucher.code if voucher else "",
                "amount": f"{application.awarded_amount or 0:,.2f}",
                "requested": f"{application.requested_amount or 0:,.2f}",
                "accept_by": city_datetime(application.award_expires_at, city),
                "valid_until": city_date(voucher.valid_until, city) if voucher else "",
                "raised": city_datetime(objection.raised_at, city) if objection else "",
                "resolved": city_datetime(objection.resolved_at, city) if objection else "",
                "resolution": objection.resolution if objection else "",
            }
            text = body % values
            if letter is not None:
                text += "\n\n" + _(
                    "The decision letter %(number)s is attached, and on the application's page."
                ) % {"number": letter.number}
            notify(
                user=user,
                kind=kind,
                subject=subject % values,
                body=text,
                path=path,
                attachments=attachments,
            )
        sent += 1
    return sent


@shared_task(acks_late=True, time_limit=120, soft_time_limit=110)
def review_assigned_notify(review_id: int) -> None:
    review = Review.objects.select_related(
        "application__program", "application__city", "reviewer"
    ).get(pk=review_id)
    application = review.application
    with translation.override(review.reviewer.preferred_language):
        notify(
            user=review.reviewer,
            kind="review",
            subject=_("[Suanli] Please review: %(title)s") % {"title": application.title},
            body=_("You are assigned to review application %(id)s in %(program)s.")
            % {"id": application.pk, "program": application.program.name},
            path=reverse(
                "vouchers:staff_application", args=[application.city.slug, application.pk]
            ),
        )


@shared_task(acks_late=True, time_limit=120, soft_time_limit=110)
def invitation_send(invitation_id: int) -> None:
    invitation = CompanyInvitation.objects.select_related("company").get(pk=invitation_id)
    # The invitee may already have an account; then their language, else the site's.
    invitee = User.objects.filter(email__iexact=invitation.email).first()
    language = invitee.preferred_language if invitee else settings.LANGUAGE_CODE
    with translation.override(language):
        _invitation_mail(invitation, invitee)


def _invitation_mail(invitation: CompanyInvitation, invitee: User | None) -> None:
    """To an account: a notification (and its e-mail); to an address without one, the
    e-mail alone."""
    path = reverse("vouchers:invitation", args=[invitation.token])
    subject = _("[Suanli] You are invited to join %(company)s") % {
        "company": invitation.company.legal_name
    }
    body = _("Sign in or register with this address, then open %(link)s") % {
        "link": absolute_url(path)
    }
    if invitee is not None and invitee.is_active:
        notify(user=invitee, kind="invitation", subject=subject, body=body, path=path)
    else:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [invitation.email])


def _outcome_texts(event: str) -> tuple[str, str]:
    # Listed here in full so that makemessages finds every message.
    return {
        "submit": (
            _("[Suanli] Outcome report to review: %(company)s, %(voucher)s"),
            _(
                "%(company)s submitted the outcome report (%(stage)s) of voucher "
                "%(voucher)s (%(program)s). Accept it or return it with comments."
            ),
        ),
        "resubmit": (
            _("[Suanli] Outcome report resubmitted: %(company)s, %(voucher)s"),
            _(
                "%(company)s changed and resubmitted the outcome report (%(stage)s) of "
                "voucher %(voucher)s (%(program)s). Accept it or return it with comments."
            ),
        ),
        "accept": (
            _("[Suanli] Outcome report accepted: %(voucher)s"),
            _(
                "The city accepted your outcome report (%(stage)s) of voucher %(voucher)s "
                "(%(program)s) on %(when)s.%(comment)s"
            ),
        ),
        "return": (
            _("[Suanli] Outcome report returned for changes: %(voucher)s"),
            _(
                "The city returned your outcome report (%(stage)s) of voucher %(voucher)s "
                "(%(program)s) on %(when)s with these comments:\n\n%(comment)s\n\n"
                "Change the report and submit it again."
            ),
        ),
    }[event]


@shared_task(acks_late=True, time_limit=120, soft_time_limit=110)
def outcome_report_notify(report_id: int, event: str, change_id: int) -> int:
    """Tell the other party of an outcome report's step, each in their language: the
    city's program managers of a submission, the company's members of a decision. The
    comment comes from the change itself, so a later step cannot leak into it."""
    report = OutcomeReport.objects.select_related(
        "program", "company", "city", "voucher", "letter"
    ).get(pk=report_id)
    change = OutcomeChange.objects.get(pk=change_id, report=report)
    city = report.city
    if event in ("submit", "resubmit"):
        recipients = User.objects.filter(
            is_active=True, memberships__city=city, memberships__role=Role.PROGRAM_MANAGER
        ).distinct()
        path = reverse("vouchers:staff_outcome", args=[city.slug, report.pk])
    else:
        recipients = report.company.members.filter(is_active=True)
        path = reverse("vouchers:my_outcome", args=[report.pk])
    letter = report.letter if event == "accept" else None
    attachments = [(f"{letter.number}.pdf", bytes(letter.pdf), "application/pdf")] if letter else []
    sent = 0
    for user in recipients:
        with translation.override(user.preferred_language):
            subject, body = _outcome_texts(event)
            comment = change.comment
            if event == "accept":
                comment = ("\n\n" + _("Comments: %(c)s") % {"c": comment}) if comment else ""
            values = {
                "company": report.company.legal_name,
                "voucher": report.voucher.code,
                "program": report.program.name,
                "stage": report.get_stage_display(),
                "when": city_datetime(change.at, city),
                "comment": comment,
            }
            text = body % values
            if letter is not None:
                text += "\n\n" + _(
                    "The acceptance letter %(number)s is attached, and on the report's page."
                ) % {"number": letter.number}
            notify(
                user=user,
                kind="outcome",
                subject=subject % values,
                body=text,
                path=path,
                attachments=attachments,
            )
        sent += 1
    return sent


@shared_task(acks_late=True, time_limit=1800, soft_time_limit=1700)
def vouchers_expire_due_task() -> int:
    """Beat, at 00:05: vouchers past their validity and grace days expire."""
    return len(vouchers_expire_due())


@shared_task(acks_late=True, time_limit=1800, soft_time_limit=1700)
def awards_lapse_due_task() -> int:
    """Beat, every hour: awards not accepted within their window lapse."""
    return len(awards_lapse_due())


@shared_task(acks_late=True, time_limit=1800, soft_time_limit=1700)
def reminders_send_task() -> int:
    """Beat, at 09:00: reminders about vouchers and waiting reviews, once each."""
    return reminders_send()


@shared_task(acks_late=True, time_limit=1800, soft_time_limit=1700)
def outcome_reminders_send_task() -> int:
    """Beat, at 09:10: reports of vouchers issued before their program asked for them
    are opened, then reminders before and after each report's due date, once each."""
    return outcome_reminders_send()
