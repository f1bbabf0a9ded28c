from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = _("Portal")

    def ready(self) -> None:
        from portal.audit_labels import portal_audit_actions_register
        from portal.audit_labels import portal_audit_actions_register
        from portal.signin import signals_connect

        signals_connect()
        portal_audit_actions_register()
        portal_audit_actions_register()
