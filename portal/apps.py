from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = _("Portal")

    def ready(self) -> None:
        from portal import twofactor
        from portal.audit_labels import portal_audit_actions_register
        from portal.reauth import portal_sensitive_register
        from portal.signin import signals_connect

        signals_connect()
        twofactor.signals_connect()
        portal_sensitive_register()
        # The labels of the audit codes this app writes (portal.audit_labels).
        portal_audit_actions_register()
