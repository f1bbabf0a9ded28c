"""Periodic jobs of the vouchers app: voucher expiry and reminders (to companies about
their vouchers, to reviewers about reviews waiting).

Each is a plain function the Celery beat task calls (vouchers/tasks.py); each is safe to
run twice (expiry skips ended vouchers, a reminder is sent once per voucher or review and
kind).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _

from portal.citytime import city_date, city_datetime
from portal.links import link_list
from portal.notifications import notify
from vouchers.ledger import voucher_expire
from vouchers.models import (
    REVIEW_STATES,
    Application,
    ApplicationState,
    OutcomeReport,
    OutcomeStage,
    ReminderSent,
    Review,
    Voucher,
    VoucherStatus,
)

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


def vouchers_expire_due(*, today: date | None = None) -> list[str]:
    """Expire vouchers whose validity and grace days are over (Asia/Shanghai dates):
    a voucher valid until 31 Oct with 30 grace days can be charged through 30 Nov and
    expires on 1 Dec. The remainder returns to the program through an `expire` entry."""
    today = today or timezone.localdate()
    # Grace days are the program's; the validity date prefilters in the database.
    candidates = (
        Voucher.objects.filter(
            status__in=[VoucherStatus.ACTIVE, VoucherStatus.EXHAUSTED, VoucherStatus.SUSPENDED],
            valid_until__lt=today,
        )
        .select_related("program")
        .order_by("pk")
    )
    due = [v for v in candidates if v.valid_until + timedelta(days=v.program.grace_days) < today]
    expired = []
    for voucher in due:
        voucher_expire(voucher=voucher)
        expired.append(voucher.code)
    return expired


def awards_lapse_due(*, now: datetime | None = None) -> list[int]:
    """Awards whose acceptance window has passed lapse, their amounts back to the
    budget (`vouchers.services.awards.award_lapse`, which checks again under the
    application's lock). Returns the applications' ids."""
    from vouchers.services.awards import award_lapse

    due = Application.objects.filter(
        state=ApplicationState.AWARDED, award_expires_at__lte=now or timezone.now()
    ).order_by("pk")
    return [app.pk for app in due if award_lapse(application=app)]


def _remind_once(kind: str, key: str) -> bool:
    try:
        with transaction.atomic():
            ReminderSent.objects.create(kind=kind, key=key)
    except IntegrityError:
        return False
    return True


def _voucher_path(voucher: Voucher) -> str:
    """The voucher's own page where an app registered one (portal.links: compute's), else
    the company's home, which lists the company's vouchers."""
    links = link_list("vouchers.voucher", voucher)
    return links[0].url if links else reverse("vouchers:company_home")


def _mail_company(voucher: Voucher, subject: StrOrPromise, body: StrOrPromise) -> int:
    """Each member's notification (and e-mail, unless they turned it off)."""
    sent = 0
    for user in voucher.company.members.filter(is_active=True):
        with translation.override(user.preferred_language):
            notify(
                user=user,
                kind="voucher",
                subject=str(subject) % {"code": voucher.code},
                body=str(body)
                % {
                    "code": voucher.code,
                    "balance": f"{voucher.balance:,.2f}",
                    "until": city_date(voucher.valid_until, voucher.city),
                },
                path=_voucher_path(voucher),
            )
        sent += 1
    return sent


def reminders_send(*, today: date | None = None) -> int:
    """Tell companies when a voucher is 80% used, and when it ends within 30 days, and
    reviewers when a review has waited more than five days. Each reminder goes out once
    per voucher or review (`ReminderSent`)."""
    today = today or timezone.localdate()
    sent = 0
    live = Voucher.objects.filter(status=VoucherStatus.ACTIVE).select_related("company", "city")
    for voucher in live.filter(balance__lte=F("face_value") * Decimal("0.2")):
        if _remind_once("voucher_80_percent", voucher.code):
            sent += _mail_company(
                voucher,
                _("[Suanli] Voucher %(code)s is 80%% used"),
                _(
                    "Your voucher %(code)s has ¥%(balance)s left, less than a fifth of "
                    "its value. It is valid until %(until)s."
                ),
            )
    for voucher in live.filter(
        Q(valid_until__lte=today + timedelta(days=30)) & Q(valid_until__gte=today)
    ):
        if _remind_once("voucher_expiring", voucher.code):
            sent += _mail_company(
                voucher,
                _("[Suanli] Voucher %(code)s ends soon"),
                _(
                    "Your voucher %(code)s is valid until %(until)s and has ¥%(balance)s "
                    "left. Usage after that date (plus the program's grace days) is not "
                    "covered."
                ),
            )
    sent += _remind_reviewers()
    return sent


def _remind_reviewers() -> int:
    """Reviews assigned more than five days ago and still not in."""
    cutoff = timezone.now() - timedelta(days=5)
    pending = (
        Review.objects.filter(
            assigned_at__lt=cutoff,
            submitted_at__isnull=True,
            application__state__in=REVIEW_STATES,
        )
        .exclude(conflict=True)
        .select_related("reviewer", "application__city")
    )
    sent = 0
    for review in pending:
        if not _remind_once("review_pending", str(review.pk)):
            continue
        with translation.override(review.reviewer.preferred_language):
            application = review.application
            notify(
                user=review.reviewer,
                kind="review",
                subject=str(_("[Suanli] A review is waiting: %(title)s"))
                % {"title": application.title},
                body=str(_("Application %(id)s has waited for your review since %(since)s."))
                % {
                    "id": application.pk,
                    "since": city_datetime(review.assigned_at, application.city),
                },
                path=reverse(
                    "vouchers:staff_application", args=[application.city.slug, application.pk]
                ),
            )
        sent += 1
    return sent


# --- outcome reports --------------------------------------------------------------------------


def outcome_reports_open_missing() -> int:
    """Reports for vouchers issued before their program asked for them (or for a
    mid-term report): created as drafts, due as the program says now. Idempotent."""
    from vouchers.outcomes import outcome_reports_schedule

    def has(stage: str) -> Exists:
        return Exists(OutcomeReport.objects.filter(voucher=OuterRef("pk"), stage=stage))

    missing = (
        Voucher.objects.filter(program__outcome_reports_required=True)
        .exclude(status=VoucherStatus.REVOKED)
        .filter(
            ~has(OutcomeStage.FINAL)
            | (Q(program__outcome_midterm_months__isnull=False) & ~has(OutcomeStage.MIDTERM))
        )
        .select_related("program")
        .order_by("pk")
    )
    return sum(len(outcome_reports_schedule(voucher=v)) for v in missing)


def _outcome_mail(report: OutcomeReport, subject: StrOrPromise, body: StrOrPromise) -> int:
    sent = 0
    for user in report.company.members.filter(is_active=True):
        with translation.override(user.preferred_language):
            values = {
                "code": report.voucher.code,
                "stage": report.get_stage_display(),
                "due": city_date(report.due_on, report.city),
                "program": report.program.name,
            }
            notify(
                user=user,
                kind="outcome",
                subject=str(subject) % values,
                body=str(body) % values,
                path=reverse("vouchers:my_outcome", args=[report.pk]),
            )
        sent += 1
    return sent


def outcome_reminders_send(*, today: date | None = None) -> int:
    """Open missing reports, then remind each company of a report due within two weeks
    and of one past its due date: once per report and stage (`ReminderSent`), however
    often the job runs. Returns the number of notifications."""
    from vouchers.outcomes import due_soon_filter, overdue_filter

    today = today or timezone.localdate()
    outcome_reports_open_missing()
    reports = OutcomeReport.objects.select_related("voucher", "company", "program", "city")
    sent = 0
    for report in reports.filter(due_soon_filter(today)).order_by("pk"):
        if _remind_once("outcome_due_soon", str(report.pk)):
            sent += _outcome_mail(
                report,
                _("[Suanli] Outcome report due %(due)s: voucher %(code)s"),
                _(
                    "The outcome report (%(stage)s) of your voucher %(code)s in %(program)s "
                    "is due on %(due)s. Fill it in and submit it on the portal."
                ),
            )
    for report in reports.filter(overdue_filter(today)).order_by("pk"):
        if _remind_once("outcome_overdue", str(report.pk)):
            sent += _outcome_mail(
                report,
                _("[Suanli] Outcome report overdue: voucher %(code)s"),
                _(
                    "The outcome report (%(stage)s) of your voucher %(code)s in %(program)s "
                    "was due on %(due)s. Until it is submitted, programs that check for "
                    "overdue reports will not accept your applications."
                ),
            )
    return sent
