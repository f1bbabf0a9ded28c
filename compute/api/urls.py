from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from compute.api import views

# Swagger UI, with its start-up script served as a file (the split view) and no inline
# style (templates/drf_spectacular/swagger_ui.html), its bundle from drf-spectacular-
# sidecar under /static/ (SPECTACULAR_SETTINGS): the site's own policy, no CDN.
swagger_ui = SpectacularSwaggerSplitView.as_view(url_name="api:schema")

app_name = "api"

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", swagger_ui, name="docs"),
    path("v1/ping", views.Ping.as_view(), name="ping"),
    path("v1/vouchers/<str:code>", views.VoucherDetail.as_view(), name="voucher_detail"),
    path("v1/redemptions", views.RedemptionList.as_view(), name="redemption_list"),
    path(
        "v1/redemptions/<int:pk>/accept", views.RedemptionAccept.as_view(), name="redemption_accept"
    ),
    path(
        "v1/redemptions/<int:pk>/reject", views.RedemptionReject.as_view(), name="redemption_reject"
    ),
    path("v1/usage/batches", views.BatchCreate.as_view(), name="batch_create"),
    path("v1/usage/batches/<int:pk>", views.BatchDetail.as_view(), name="batch_detail"),
    path("v1/usage/records", views.UsageRecordList.as_view(), name="record_list"),
    path("v1/settlements", views.SettlementList.as_view(), name="settlement_list"),
    path("v1/settlements/<int:pk>", views.SettlementDetail.as_view(), name="settlement_detail"),
    re_path(
        r"^v1/usage/records/(?P<record_id>[A-Za-z0-9._:-]{1,64})/void$",
        views.UsageRecordVoid.as_view(),
        name="record_void",
    ),
]
