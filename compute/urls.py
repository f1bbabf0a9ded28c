"""URLs of the compute app's screens. `site_patterns` are mounted at the root (under
the reserved /my/, /dc/ and /company/ prefixes); `city_patterns` inside /<city_slug>/."""

from django.urls import include, path

from compute.views import (
    company,
    dashboards,
    exports,
    integrity,
    operator,
    parties,
    staff,
    webhooks,
)

app_name = "compute"


def _exports(prefix: str, view, name: str) -> list:
    """`<prefix>.csv` and `<prefix>.xlsx` for one export view (the format as a fixed
    argument, not a URL parameter)."""
    return [
        path(f"{prefix}.{fmt}", view, {"fmt": fmt}, name=f"{name}_{fmt}") for fmt in ("csv", "xlsx")
    ]


site_patterns = [
    path("my/vouchers/", company.my_vouchers, name="my_vouchers"),
    path("my/dashboard/", dashboards.my_dashboard, name="my_dashboard"),
    path(
        "my/vouchers/<str:code>/usage.json",
        dashboards.my_voucher_usage_json,
        name="my_voucher_usage_json",
    ),
    path("my/vouchers/<str:code>/", company.my_voucher, name="my_voucher"),
    path("my/redemptions/<int:pk>/cancel/", company.my_redemption_cancel, name="my_cancel"),
    path("my/redemptions/<int:pk>/close/", company.my_redemption_close, name="my_close"),
    *_exports("my/exports/usage", exports.my_usage_export, "my_usage_export"),
    # A company's shareholders and managers, beside the vouchers app's company pages.
    path("company/<int:pk>/parties/", parties.company_parties, name="company_parties"),
    path(
        "company/<int:pk>/parties/<int:party_id>/remove/",
        parties.company_party_remove,
        name="company_party_remove",
    ),
    path("dc/", operator.console_list, name="console_list"),
    path("dc/<slug:slug>/", operator.console, name="console"),
    path("dc/<slug:slug>/dashboard/", dashboards.console_dashboard, name="console_dashboard"),
    path(
        "dc/<slug:slug>/dashboard.json",
        dashboards.console_dashboard_json,
        name="console_dashboard_json",
    ),
    # The superusers' overview of every city; /staff/ is reserved, never a city's slug.
    path("staff/overview/", dashboards.platform_overview, name="platform_overview"),
    path("staff/overview.json", dashboards.platform_overview_json, name="platform_overview_json"),
    path("dc/<slug:slug>/redemptions/", operator.console_redemptions, name="console_redemptions"),
    path(
        "dc/<slug:slug>/redemptions/<int:pk>/accept/",
        operator.console_redemption_accept,
        name="console_accept",
    ),
    path(
        "dc/<slug:slug>/redemptions/<int:pk>/reject/",
        operator.console_redemption_reject,
        name="console_reject",
    ),
    path("dc/<slug:slug>/batches/", operator.console_batches, name="console_batches"),
    path("dc/<slug:slug>/batches/<int:pk>/", operator.console_batch, name="console_batch"),
    path(
        "dc/<slug:slug>/batches/<int:pk>/retry/",
        operator.console_batch_retry,
        name="console_batch_retry",
    ),
    path("dc/<slug:slug>/keys/", operator.console_keys, name="console_keys"),
    path(
        "dc/<slug:slug>/keys/<int:pk>/revoke/", operator.console_key_revoke, name="console_revoke"
    ),
    path("dc/<slug:slug>/sync/", operator.console_sync, name="console_sync"),
    path("dc/<slug:slug>/findings/", integrity.console_findings, name="console_findings"),
    path("dc/<slug:slug>/inventory/", integrity.console_inventory, name="console_inventory"),
    path("dc/<slug:slug>/webhooks/", webhooks.console_webhooks, name="console_webhooks"),
    path(
        "dc/<slug:slug>/webhooks/<int:pk>/revoke/",
        webhooks.console_webhook_revoke,
        name="console_webhook_revoke",
    ),
    path(
        "dc/<slug:slug>/webhooks/deliveries/<int:pk>/again/",
        webhooks.console_webhook_redeliver,
        name="console_webhook_redeliver",
    ),
    path(
        "dc/<slug:slug>/settlements/",
        operator.console_settlements,
        name="console_settlements",
    ),
    path(
        "dc/<slug:slug>/settlements/<int:pk>/",
        operator.console_settlement,
        name="console_settlement",
    ),
    path(
        "dc/<slug:slug>/settlements/<int:pk>/<str:download>/",
        operator.console_settlement,
        name="console_settlement_download",
    ),
    *_exports("dc/<slug:slug>/exports/usage", exports.console_usage_export, "console_usage_export"),
    *_exports(
        "dc/<slug:slug>/exports/settlements",
        exports.console_settlement_export,
        "console_settlement_export",
    ),
]

city_patterns = [
    path("staff/dashboards/", dashboards.program_dashboards, name="program_dashboards"),
    path(
        "staff/programs/<slug:slug>/dashboard/",
        dashboards.program_dashboard,
        name="program_dashboard",
    ),
    path(
        "staff/programs/<slug:slug>/dashboard.json",
        dashboards.program_dashboard_json,
        name="program_dashboard_json",
    ),
    *_exports("staff/exports/usage", exports.usage_export, "usage_export"),
    *_exports("staff/exports/settlements", exports.settlement_export, "settlement_export"),
    path("staff/vouchers/", staff.staff_vouchers, name="staff_vouchers"),
    path("staff/vouchers/<str:code>/", staff.staff_voucher, name="staff_voucher"),
    path(
        "staff/vouchers/<str:code>/<slug:action>/",
        staff.staff_voucher_status,
        name="staff_voucher_status",
    ),
    path("staff/data-centers/", staff.staff_data_centers, name="staff_data_centers"),
    path("staff/sync/", staff.staff_sync, name="staff_sync"),
    path("staff/findings/", integrity.staff_findings, name="staff_findings"),
    path(
        "staff/programs/<slug:slug>/integrity/",
        integrity.staff_program_integrity,
        name="staff_program_integrity",
    ),
    path("staff/findings/<int:pk>/", integrity.staff_finding, name="staff_finding"),
    path("staff/redemptions/", staff.staff_redemptions, name="staff_redemptions"),
    path("staff/settlements/", staff.staff_settlements, name="staff_settlements"),
    path(
        "staff/settlements/<int:pk>/",
        staff.staff_settlement,
        name="staff_settlement",
    ),
    path(
        "staff/settlements/<int:pk>/<str:download>/",
        staff.staff_settlement,
        name="staff_settlement_download",
    ),
]

urlpatterns = [*site_patterns, path("<slug:city_slug>/", include(city_patterns))]
