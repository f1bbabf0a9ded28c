"""URLs of the compute app's screens. `site_patterns` are mounted at the root (under
the reserved /my/ and /dc/ prefixes); `city_patterns` inside /<city_slug>/."""

from django.urls import include, path

from compute import settlement_views, views

app_name = "compute"

site_patterns = [
    path("my/vouchers/", views.my_vouchers, name="my_vouchers"),
    path("my/vouchers/<str:code>/", views.my_voucher, name="my_voucher"),
    path("my/redemptions/<int:pk>/cancel/", views.my_redemption_cancel, name="my_cancel"),
    path("my/redemptions/<int:pk>/close/", views.my_redemption_close, name="my_close"),
    path("dc/", views.console_list, name="console_list"),
    path("dc/<slug:slug>/", views.console, name="console"),
    path("dc/<slug:slug>/redemptions/", views.console_redemptions, name="console_redemptions"),
    path(
        "dc/<slug:slug>/redemptions/<int:pk>/accept/",
        views.console_redemption_accept,
        name="console_accept",
    ),
    path(
        "dc/<slug:slug>/redemptions/<int:pk>/reject/",
        views.console_redemption_reject,
        name="console_reject",
    ),
    path("dc/<slug:slug>/batches/", views.console_batches, name="console_batches"),
    path("dc/<slug:slug>/batches/<int:pk>/", views.console_batch, name="console_batch"),
    path(
        "dc/<slug:slug>/batches/<int:pk>/retry/",
        views.console_batch_retry,
        name="console_batch_retry",
    ),
    path("dc/<slug:slug>/keys/", views.console_keys, name="console_keys"),
    path("dc/<slug:slug>/keys/<int:pk>/revoke/", views.console_key_revoke, name="console_revoke"),
    path("dc/<slug:slug>/sync/", views.console_sync, name="console_sync"),
    path(
        "dc/<slug:slug>/settlements/",
        settlement_views.console_settlements,
        name="console_settlements",
    ),
    path(
        "dc/<slug:slug>/settlements/<int:pk>/",
        settlement_views.console_settlement,
        name="console_settlement",
    ),
    path(
        "dc/<slug:slug>/settlements/<int:pk>/<str:download>/",
        settlement_views.console_settlement,
        name="console_settlement_download",
    ),
]

city_patterns = [
    path("staff/vouchers/", views.staff_vouchers, name="staff_vouchers"),
    path("staff/vouchers/<str:code>/", views.staff_voucher, name="staff_voucher"),
    path(
        "staff/vouchers/<str:code>/<slug:action>/",
        views.staff_voucher_status,
        name="staff_voucher_status",
    ),
    path("staff/data-centers/", views.staff_data_centers, name="staff_data_centers"),
    path("staff/sync/", views.staff_sync, name="staff_sync"),
    path("staff/settlements/", settlement_views.staff_settlements, name="staff_settlements"),
    path(
        "staff/settlements/<int:pk>/",
        settlement_views.staff_settlement,
        name="staff_settlement",
    ),
    path(
        "staff/settlements/<int:pk>/<str:download>/",
        settlement_views.staff_settlement,
        name="staff_settlement_download",
    ),
]

urlpatterns = [*site_patterns, path("<slug:city_slug>/", include(city_patterns))]
