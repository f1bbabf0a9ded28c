from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ComputeConfig(AppConfig):
    name = "compute"
    verbose_name = _("Compute")

    def ready(self) -> None:
        from compute.audit_actions import compute_audit_actions_register
        from compute.dashboard_links import dashboard_links_register
        from compute.links import links_register
        from compute.metrics import metrics_register
        from compute.notification_kinds import notification_kinds_register
        from compute.outcome_usage import outcome_usage_register
        from compute.security import security_register

        links_register()
        dashboard_links_register()
        metrics_register()
        notification_kinds_register()
        security_register()
        # The usage summary of outcome reports, by data center and accelerator.
        outcome_usage_register()
        # The labels of the audit codes this app writes (portal.audit_labels).
        compute_audit_actions_register()
        from compute.webhooks.services import voucher_status_changed_receiver
        from vouchers.signals import voucher_status_changed

        voucher_status_changed.connect(
            voucher_status_changed_receiver, dispatch_uid="compute.webhooks.voucher_status"
        )
