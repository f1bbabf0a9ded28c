"""What the matrix leaves out, allows or expects, each with its reason."""

from __future__ import annotations

import re

# --- what the matrix leaves out, each with its reason -----------------------------------

# (how a route is recognised, what, why). Every rule must match at least one route, so the
# list cannot outlive the routes it names.
SKIPPED: list[tuple[str, str, str]] = [
    (
        "namespace",
        "admin",
        "Django's admin site: platform staff only (is_staff, checked by the admin itself); "
        "no city, data center or company scoping to test",
    ),
    (
        "include",
        "allauth.urls",
        "allauth's account pages (sign-in, sign-up, password, e-mail): the caller's own "
        "account only, no tenant data",
    ),
    (
        "name",
        "api:schema",
        "the OpenAPI document: generated from code, the same for everyone, no tenant data",
    ),
    ("name", "api:docs", "Swagger UI over api:schema: static, no tenant data"),
    (
        "name",
        "portal:set_language",
        "Django's i18n language switch: writes only the caller's own language preference",
    ),
]

# Columns that change on requests of any principal, whatever the tenant; left out of the
# checksums (the rest of each row is still compared).
VOLATILE_COLUMNS: dict[str, tuple[str, ...]] = {
    # Django's update_last_login (the user_logged_in signal) stamps every sign-in,
    # including the test client's force_login.
    "portal_user": ("last_login",),
    # api_key_authenticate records a key's use (at most once a minute): any API call.
    "compute_apikey": ("last_used_at",),
}
# Tables left out whole: none. Sessions (django_session), the cache and the rate limits
# (Redis) are outside the three apps' tables anyway.
EXCLUDED_TABLES: dict[str, str] = {}

APPS = ("portal", "vouchers", "compute")

# Routes where a principal legitimately writes rows of its own: url name -> (principals,
# tables they may change, why). These rows are rolled back after the check, so the world
# stays as it was; any other table changing is still a finding.
OWN_WRITES: dict[str, tuple[frozenset[str], frozenset[str], str]] = {
    "api:batch_create": (
        frozenset({"api_key_x"}),
        frozenset({"compute_usagebatch", "compute_ingestday"}),
        "X's own usage batch is stored (202) even when its records name B's voucher; "
        "applying it must reject every record and charge nothing (checked); X's own "
        "ingestion counts (its dashboard) count the rejections",
    ),
    "portal:notification_settings": (
        frozenset({"*"}),
        frozenset({"portal_user"}),
        "the caller's own choice of e-mail per kind of notification (User.email_off)",
    ),
    # Lands with portal.signin (issue #15); harmless while the route does not exist.
    "portal:sessions": (
        frozenset({"*"}),
        frozenset({"portal_auditevent", "portal_signin"}),
        "the caller's own sessions page: 'sign out everywhere' ends the caller's own "
        "sign-ins and audits it",
    ),
}

# Every export is an audit event (issue #12 item 7): `export.<kind>` in the caller's
# city's chain (or the platform's, for a company's or a data center's own export).
for _export in (
    "vouchers:application_export",
    "vouchers:award_export",
    "vouchers:voucher_export",
    "vouchers:ledger_export",
    "vouchers:my_voucher_export",
    "vouchers:my_ledger_export",
    "compute:usage_export",
    "compute:settlement_export",
    "compute:console_usage_export",
    "compute:console_settlement_export",
    "compute:my_usage_export",
    "portal:audit_export",
):
    for _fmt in ("csv", "xlsx"):
        OWN_WRITES[f"{_export}_{_fmt}"] = (
            frozenset({"*"}),
            frozenset({"portal_auditevent"}),
            "an export of the caller's own rows is audited (export.<kind>, with its filter)",
        )

# A 5xx that is a route's answer, not a crash: url name -> (status, why).
NOT_A_CRASH: dict[str, tuple[int, str]] = {
    "healthz": (503, "the health check's answer while no Celery worker or beat has a heartbeat"),
}

# Routes that answer 200 whatever B's object in the address, each with its reason; on any
# other route a 200 for an address naming B's objects is a finding even without a marker.
# The markers are checked on these too.
ANSWERS_ANYONE: dict[str, str] = {
    "portal:landing": "public: the list of cities",
    "portal:city_home": "public: a city's home page",
    "vouchers:programs": "public: a city's open programs",
    "vouchers:program": "public: an open program's terms",
    "vouchers:notice": "public: the public notice (company B has nothing in notice)",
    "vouchers:results": "public: the city's programs with public results",
    "vouchers:program_results": "public: a program's results (结果公示), awards whose notice "
    "ended; company B has none",
    "vouchers:invitation": "GET shows the accept button for whatever token; the POST "
    "looks it up (and is a 404 for anyone but the invitee)",
    "portal:staff_join": "GET shows the accept button for whatever token (the city's name "
    "is in the address); the POST looks it up (and is a 404 for anyone but the invitee)",
}

# Posted or queried fields that choose what a view does (`step=issue`, `form=profile`):
# each value the view compares them with is tried.
SWITCH_FIELDS = ("step", "form")

# The literal path segment before a numeric kwarg names the kind of object it takes.
KIND_OF_SEGMENT = {
    "applications": "application",
    "documents": "document",
    "company": "company",
    "redemptions": "redemption",
    "batches": "batch",
    "keys": "api_key",
    "settlements": "settlement",
    "members": "membership",
    "letters": "letter",
    "webhooks": "webhook_endpoint",
    "deliveries": "webhook_delivery",
    "outcomes": "outcome_report",
    "findings": "finding",
    "parties": "related_party",
}

FORM = "application/x-www-form-urlencoded"
SLUGLIKE = re.compile(r"[a-z][a-z0-9_]{1,40}")
# Where a view reads posted or queried fields (Django's and DRF's names).
INPUTS = {"POST": "POST", "data": "POST", "GET": "GET", "query_params": "GET"}
