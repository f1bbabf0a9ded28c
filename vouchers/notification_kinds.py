"""The kinds of notification the vouchers app sends (portal.notifications): each user
chooses, per kind, whether it also comes by e-mail."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from portal.notifications import notification_kind_register


def notification_kinds_register() -> None:
    notification_kind_register(
        "application", _("Your applications: each step, awards and decision letters")
    )
    notification_kind_register("objection", _("Answers to objections you raised"))
    notification_kind_register("voucher", _("Your vouchers: mostly used, ending soon"))
    notification_kind_register(
        "outcome", _("Outcome reports: when they are due, reminders, acceptance and returns")
    )
    notification_kind_register("invitation", _("Invitations to join a company"))
    notification_kind_register("review", _("Reviews assigned to you, and reminders"))
    notification_kind_register("tie_break", _("Tie-breaks for program managers to decide"))
