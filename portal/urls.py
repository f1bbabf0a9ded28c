"""Root URLs. Site-wide pages first; everything under `/<city_slug>/` belongs to a city.

City slugs may not take the names of the site-wide prefixes (see `RESERVED_SLUGS`).
"""

from django.contrib import admin
from django.urls import include, path

from portal import export_views, health, metrics, views
from portal.notification_views import (
    notification_list,
    notification_read,
    notification_read_all,
    notification_settings,
)
from portal.signin import sessions_page

city_patterns = [
    path("", views.city_home, name="city_home"),
    path("staff/", views.staff_home, name="staff_home"),
    path("staff/members/", views.staff_members, name="staff_members"),
    path("staff/members/<int:pk>/revoke/", views.staff_member_revoke, name="staff_member_revoke"),
    path("staff/join/<str:token>/", views.staff_join, name="staff_join"),
    path("staff/audit/", views.audit_log, name="audit_log"),
    *[
        path(
            f"staff/audit/export.{fmt}",
            export_views.audit_export,
            {"fmt": fmt},
            name=f"audit_export_{fmt}",
        )
        for fmt in ("csv", "xlsx")
    ],
]

portal_patterns = [
    path("", views.landing, name="landing"),
    path("i18n/setlang/", views.set_language, name="set_language"),
    path("accounts/profile/", views.profile, name="profile"),
    path("accounts/notifications/", notification_list, name="notifications"),
    path(
        "accounts/notifications/<int:pk>/read/",
        notification_read,
        name="notification_read",
    ),
    path(
        "accounts/notifications/read-all/",
        notification_read_all,
        name="notifications_read_all",
    ),
    path(
        "accounts/notifications/settings/",
        notification_settings,
        name="notification_settings",
    ),
    path("accounts/sessions/", sessions_page, name="sessions"),
    path("<slug:city_slug>/", include(city_patterns)),
]

urlpatterns = [
    # Browsers ask for /favicon.ico whatever the page says; the icon is a static file.
    path("favicon.ico", views.favicon),
    # For load balancers, container healthchecks and Prometheus (docs/operations.md).
    path("healthz", health.healthz, name="healthz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/", include("compute.api.urls")),
    # The voucher-holder's /my/…, the data-center console /dc/…, and compute's city
    # pages; before the portal's /<city_slug>/ catch-all.
    path("", include("compute.urls")),
    path("", include("vouchers.urls")),
    path("", include((portal_patterns, "portal"))),  # type: ignore[arg-type]
]

handler403 = "portal.views.error_403"
handler404 = "portal.views.error_404"
handler500 = "portal.views.error_500"
