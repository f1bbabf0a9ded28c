"""Platform admins manage data centers, their city registrations and operators here.
Money never moves from the admin: redemptions, batches, records and keys are read-only."""

from django.contrib import admin

from compute.models import ApiKey, DataCenter, Redemption, Registration, UsageBatch
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
    list_display = ["pk", "data_center", "source", "status", "received", "accepted", "rejected"]
    list_filter = ["status", "source", "data_center"]
    exclude = ["body", "results_json"]
    list_select_related = ["data_center"]
