"""Readable names for the audit trail: each action code (`settlement.mark_paid`) has a
translated label, and each target is shown as its model's name and id ("Application
#43", "申请 #43") instead of `vouchers.application 43`.

portal cannot know the later apps' actions, so each app registers its own from its
`AppConfig.ready()` (`audit_actions_register`), as it does links (portal.links). A code
with no label is shown as written, and `tests/portal/test_audit_trail.py` fails for
every code the source writes that has none.

A *family* of codes written with a variable part (`export.<kind>`) is registered once
as `export.*`: its label names the family and the page adds the part.
"""

from __future__ import annotations

from django.apps import apps
from django.db.models import Q
from django.utils.functional import Promise
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

_labels: dict[str, str | Promise] = {}


def audit_actions_register(labels: dict[str, str | Promise]) -> None:
    """Give action codes their labels; registering a code again replaces its label."""
    _labels.update(labels)


def audit_action_label(code: str) -> str:
    """The code's label in the active language, or the code itself if it has none."""
    if code in _labels:
        return str(_labels[code])
    family, _dot, rest = code.partition(".")
    if f"{family}.*" in _labels:
        return f"{_labels[f'{family}.*']}: {rest}"
    return code


def audit_action_known(code: str) -> bool:
    family = code.partition(".")[0]
    return code in _labels or f"{family}.*" in _labels


def audit_action_choices() -> list[tuple[str, str]]:
    """Every registered code (families as `family.*`) with its label, by label."""
    return sorted(((code, str(label)) for code, label in _labels.items()), key=lambda c: c[1])


def audit_action_filter(code: str) -> Q:
    """The events of one code, or of a whole family (`export.*`)."""
    if code.endswith(".*"):
        return Q(action__startswith=code[:-1])
    return Q(action=code)


def audit_action_search(text: str) -> list[str]:
    """The registered codes whose label (in the active language) contains `text`, so
    the trail can be searched by what the page shows, not only by the codes."""
    text = text.casefold()
    return [code for code, label in _labels.items() if text in str(label).casefold()]


def audit_target_label(target_type: str, target_id: str) -> str:
    """ "Application #43" for `vouchers.application`, 43, in the active language."""
    if not target_type:
        return ""
    try:
        model = apps.get_model(target_type)
    except (LookupError, ValueError):
        return f"{target_type} #{target_id}"
    name = str(model._meta.verbose_name)
    return gettext("%(model)s #%(id)s") % {"model": name[:1].upper() + name[1:], "id": target_id}


def audit_target_choices() -> list[tuple[str, str]]:
    """The models of the project's apps an event may name, by their readable name."""
    models = [
        m
        for label in ("portal", "vouchers", "compute")
        for m in apps.get_app_config(label).get_models()
    ]
    choices = [(m._meta.label_lower, str(m._meta.verbose_name)) for m in models]
    return sorted(choices, key=lambda c: c[1])


def portal_audit_actions_register() -> None:
    audit_actions_register(
        {
            "membership.grant": _("Staff role granted"),
            "membership.revoke": _("Staff role revoked"),
            "membership.invite": _("Staff member invited"),
            "user.sign_out_everywhere": _("Signed out on every device"),
            "user.sign_out_session": _("Another session signed out"),
            "user.create": _("User created"),
            "user.update": _("User changed"),
            "user.password_set": _("Password set"),
            "user.mfa_added": _("Two-factor method added"),
            "user.mfa_removed": _("Two-factor method removed"),
            "city.create": _("City created"),
            "city.update": _("City changed"),
            "audit.key_rotated": _("Audit chain key rotated"),
            "export.*": _("Data exported"),
        }
    )
