"""The kinds of notification the compute app sends (portal.notifications)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from portal.notifications import notification_kind_register


def notification_kinds_register() -> None:
    notification_kind_register("api_key", _("Data-center API keys about to expire"))
