"""Platform admins manage data centers, their city registrations and operators here,
through the services (`data_center_save`, `registration_set`), which audit each change.
Money never moves from the admin: redemptions, batches, records and keys are read-only."""

from django.contrib import admin
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from compute.batches import usage_batch_retry
from compute.models import (
    ApiKey,
    BatchStatus,
    DataCenter,
    Finding,
    IntegrityRules,
    Inventory,
    PriceBand,
    Redemption,
    Registration,
    UsageArchive,
    UsageBatch,
)
from compute.services import data_center_save, registration_set
from portal.admin import ReadOnlyAdmin, ServiceAdmin, client_ip
from portal.errors import DomainError


class RegistrationInline(admin.TabularInline):
    """Each added or changed row is `registration_set` (its status as asked; the end
    date follows the status). Registrations end, they are not deleted."""

    model = Registration
    extra = 0
    fields = ["city", "status", "starts_on", "ends_on"]
    readonly_fields = ["ends_on"]
    can_delete = False


@admin.register(DataCenter)
class DataCenterAdmin(ServiceAdmin):
    list_display = [
        "slug",
        "name_zh",
        "name_en",
        "operator_zh",
        "operator_en",
        "hub",
        "cluster_zh",
        "cluster_en",
        "state_run",
        "is_active",
    ]
    list_filter = ["hub", "state_run", "is_active"]
    search_fields = ["slug", "name_zh", "name_en", "operator_zh", "operator_en"]
    filter_horizontal = ["programs", "operators"]
    inlines = [RegistrationInline]
    # The feed sync's state: written by the sync, never by people.
    readonly_fields = ["feed_cursor", "feed_healthy", "feed_error", "feed_checked_at"]

    def save_model(self, request, obj, form, change):
        data_center_save(
            actor=request.user,
            data_center=obj,
            changed=form.changed_data,
            programs=form.cleaned_data.get("programs"),
            operators=form.cleaned_data.get("operators"),
            ip=client_ip(request),
        )

    def save_formset(self, request, form, formset, change):
        if formset.model is not Registration:
            return super().save_formset(request, form, formset, change)
        saved, changed = [], []
        for row in formset.forms:
            if not row.has_changed():
                continue
            if row.instance.pk and "city" in row.changed_data:
                raise DomainError(
                    gettext("A registration's city cannot change; add one for the other city."),
                    code="conflict",
                )
            registration = registration_set(
                city=row.cleaned_data["city"],
                data_center=form.instance,
                status=row.cleaned_data["status"],
                actor=request.user,
                starts_on=row.cleaned_data.get("starts_on"),
                ip=client_ip(request),
            )
            if row.instance.pk:
                changed.append((registration, row.changed_data))
            else:
                saved.append(registration)
        self.formset_saved(formset, saved, changed)


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


# Integrity (compute/integrity/): declarations and findings are written by services
# (the console, the staff's pages, the checks); the admin reads them.
@admin.register(Inventory)
class InventoryAdmin(ReadOnlyAdmin):
    list_display = ["registration", "accelerator", "cards", "valid_from", "created_at"]
    list_filter = ["registration__data_center"]
    list_select_related = ["registration"]


@admin.register(PriceBand)
class PriceBandAdmin(ReadOnlyAdmin):
    list_display = ["program", "accelerator", "reference_price", "tolerance_percent"]
    list_select_related = ["program"]


@admin.register(IntegrityRules)
class IntegrityRulesAdmin(ReadOnlyAdmin):
    list_display = ["program", "check_plan", "plan_margin_percent", "hold_charges"]
    list_select_related = ["program"]


@admin.register(Finding)
class FindingAdmin(ReadOnlyAdmin):
    list_display = ["pk", "city", "data_center", "rule", "severity", "status", "raised_at"]
    list_filter = ["status", "rule", "city"]
    list_select_related = ["city", "data_center"]


@admin.register(UsageArchive)
class UsageArchiveAdmin(ReadOnlyAdmin):
    """Months detached by `manage.py archive_usage` (compute.partitions)."""

    list_display = ["month", "table_name", "records", "covered_total", "archived_at"]
