"""The compute app's audit action codes and their labels (portal.audit_labels),
registered by `ComputeConfig.ready()`. Every code the app writes needs one here:
tests/portal/test_audit_trail.py reads the source for them."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from portal.audit_labels import audit_actions_register


def compute_audit_actions_register() -> None:
    audit_actions_register(
        {
            "api_key.issue": _("API key issued"),
            "api_key.revoke": _("API key revoked"),
            "data_center.create": _("Data center created"),
            "data_center.update": _("Data center changed"),
            "data_center.programs": _("Data center's programs changed"),
            "data_center.operator_grant": _("Data-center operator added"),
            "data_center.operator_revoke": _("Data-center operator removed"),
            "registration.set": _("Data-center registration set"),
            "redemption.request": _("Redemption requested"),
            "redemption.accept": _("Redemption accepted"),
            "redemption.reject": _("Redemption rejected"),
            "redemption.cancel": _("Redemption cancelled"),
            "redemption.close": _("Redemption closed"),
            "usage_record.void": _("Usage record voided"),
            "usage_batch.fail": _("Usage batch failed"),
            "usage.archive": _("Usage month archived (partition detached)"),
            "usage_batch.retry": _("Usage batch retried"),
            "webhook.create": _("Webhook endpoint registered"),
            "webhook.revoke": _("Webhook endpoint revoked"),
            "webhook.redeliver": _("Webhook event sent again"),
            # One per statement step (compute.settlements.STEPS).
            "settlement.issue": _("Statement issued"),
            "settlement.confirm": _("Statement confirmed"),
            "settlement.mark_paid": _("Statement marked paid"),
            "finding.raise": _("Integrity finding raised"),
            "finding.confirm": _("Integrity finding confirmed (records voided)"),
            "finding.clear": _("Integrity finding cleared"),
            "inventory.declare": _("Inventory declared"),
            "integrity.rules": _("Program's integrity checks set"),
            "integrity.price_band": _("Price band set"),
            "related_party.add": _("Shareholder or manager declared"),
            "related_party.remove": _("Shareholder or manager withdrawn"),
            # manage.py seed_scale (compute/scale.py): one event per load.
            "scale.seed": _("Scale test data loaded"),
        }
    )
