"""The vouchers app's audit action codes and their labels (portal.audit_labels),
registered by `VouchersConfig.ready()`. Every code the app writes needs one here:
tests/portal/test_audit_trail.py reads the source for them."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from portal.audit_labels import audit_actions_register


def vouchers_audit_actions_register() -> None:
    audit_actions_register(
        {
            # Applications, one code per workflow transition (workflow.TRANSITIONS).
            "application.create": _("Application started"),
            "application.submit": _("Application submitted"),
            "application.withdraw": _("Application withdrawn"),
            "application.start_screening": _("Screening started"),
            "application.pass_screening": _("Screening passed"),
            "application.fail_screening": _("Screening failed"),
            "application.request_info": _("Information requested"),
            "application.answer_info": _("Information request answered"),
            "application.conclude_reviews": _("Reviews concluded"),
            "application.break_tie": _("Tie broken"),
            "application.approve": _("Application approved"),
            "application.reject": _("Application rejected"),
            "application.accept_award": _("Award accepted"),
            "application.decline_award": _("Award declined"),
            "application.lapse_award": _("Award lapsed"),
            "document.add": _("Document uploaded"),
            "document.download": _("Document downloaded"),
            "document.replace": _("Document replaced"),
            "document.remove": _("Document removed"),
            "letter.download": _("Decision letter downloaded"),
            "review.assign": _("Reviewer assigned"),
            "review.declare": _("Conflict of interest declared"),
            "review.submit": _("Review submitted"),
            "objection.raise": _("Objection raised"),
            "objection.resolve": _("Objection resolved"),
            "program.save": _("Program saved"),
            "program.letter_template": _("Decision letter wording saved"),
            "company.create": _("Company registered"),
            "company.update": _("Company profile changed"),
            "company.invite": _("Company member invited"),
            "company.join": _("Company member joined"),
            "voucher.issue": _("Voucher issued"),
            "voucher.suspend": _("Voucher suspended"),
            "voucher.resume": _("Voucher resumed"),
            "voucher.revoke": _("Voucher revoked"),
            "voucher.expire": _("Voucher expired"),
            # Outcome reports (vouchers.outcomes.TRANSITIONS) and their documents.
            "outcome.update": _("Outcome report changed"),
            "outcome.submit": _("Outcome report submitted"),
            "outcome.resubmit": _("Outcome report resubmitted"),
            "outcome.accept": _("Outcome report accepted"),
            "outcome.return": _("Outcome report returned"),
            "outcome.document_add": _("Outcome report document uploaded"),
            "outcome.document_remove": _("Outcome report document removed"),
            "outcome.document_download": _("Outcome report document downloaded"),
        }
    )
