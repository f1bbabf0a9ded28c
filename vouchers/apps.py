from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class VouchersConfig(AppConfig):
    name = "vouchers"
    verbose_name = _("Vouchers")

    def ready(self) -> None:
        from vouchers.audit_actions import vouchers_audit_actions_register
        from vouchers.ledger_anchors import ledger_anchor_register
        from vouchers.links import links_register
        from vouchers.notification_kinds import notification_kinds_register
        from vouchers.sensitive import sensitive_actions_register

        ledger_anchor_register()
        links_register()
        sensitive_actions_register()
        notification_kinds_register()
        # The labels of the audit codes this app writes (portal.audit_labels).
        vouchers_audit_actions_register()
