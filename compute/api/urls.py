from django.urls import path, re_path
from drf_spectacular.settings import spectacular_settings
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from compute.api import views
from portal.headers import csp_override, policy_allowing

# Swagger UI, with its start-up script served as a file (the split view) and no inline
# style (templates/drf_spectacular/swagger_ui.html), under the site's policy plus the
# origin its bundle comes from (SWAGGER_UI_DIST: a CDN by default; a copy under /static/
# needs no exception). SECURITY.md says what that exception risks.
swagger_ui = csp_override(lambda: policy_allowing(spectacular_settings.SWAGGER_UI_DIST))(
    SpectacularSwaggerSplitView.as_view(url_name="api:schema")
)

app_name = "api"

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", swagger_ui, name="docs"),
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
