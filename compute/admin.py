"""Platform admins manage data centers, their city registrations and operators here.
Money never moves from the admin: redemptions, batches, records and keys are read-only."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from compute.batches import usage_batch_retry
from compute.models import (
    ApiKey,
    BatchStatus,
    DataCenter,
    Redemption,
    Registration,
    UsageBatch,
)
from portal.admin import ReadOnlyAdmin


class RegistrationInline(admin.TabularInline):
    model = Registration
    extra = 0
    fields = ["city", "status", "starts_on", "ends_on"]


@admin.register(DataCenter)
class DataCenterAdmin(admin.ModelAdmin):
    list_display = [
        "slug",
        "name_zh",
        "name_en",
        "operator",
        "hub",
        "cluster",
        "state_run",
        "is_active",
    ]
    list_filter = ["hub", "state_run", "is_active"]
    search_fields = ["slug", "name_zh", "name_en", "operator"]
    filter_horizontal = ["programs", "operators"]
    inlines = [RegistrationInline]


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyAdmin):
    list_display = ["prefix", "data_center", "name", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["data_center"]
    exclude = ["key_hash"]


@admin.register(Redemption)
class RedemptionAdmin(ReadOnlyAdmin):
    list_display = ["pk", "voucher", "data_center", "status", "contract_ref", "covered_total"]
    list_filter = ["status", "data_center"]
    search_fields = ["voucher__code", "contract_ref"]
    list_select_related = ["voucher", "data_center"]


@admin.register(UsageBatch)
class UsageBatchAdmin(ReadOnlyAdmin):
    """Also the platform's dead-letter list: filter by status "failed", then retry."""

    list_display = [
        "pk",
        "data_center",
        "source",
        "status",
        "received",
        "accepted",
        "rejected",
        "attempts",
        "created_at",
        "failure_reason",
    ]
    list_filter = ["status", "source", "data_center"]
    exclude = ["body", "results_json"]
    list_select_related = ["data_center"]
    actions = ["retry_failed"]

    @admin.action(description=_("Retry the selected failed batches"))
    def retry_failed(self, request, queryset):
        retried = 0
        for batch in queryset.filter(status=BatchStatus.FAILED).defer("body", "results_json"):
            usage_batch_retry(batch=batch, actor=request.user)
            retried += 1
        self.message_user(request, _("%(n)s failed batches queued again.") % {"n": retried})
