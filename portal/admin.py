"""Platform admin: cities, users and staff roles; the audit trail read-only."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.utils.translation import gettext_lazy as _

from portal.audit import audit_record
from portal.models import AuditEvent, City, CityMembership, User
from portal.signin import admin_login

# One sign-in form for the whole site, allauth's, with its failed-login limits: the
# admin's own form would be a second way in without them (portal/signin.py).
admin.site.login = admin_login


class ReadOnlyAdmin(admin.ModelAdmin):
    """For records that only services write (audit events, ledger-side rows): the admin
    may look, never add, change or delete."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "display_name", "preferred_language", "is_staff", "is_active"]
    search_fields = ["email", "display_name"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        (_("Profile"), {"fields": ("display_name", "preferred_language")}),
        (_("Permissions"), {"fields": ("is_active", "is_staff", "is_superuser", "groups")}),
        (_("Dates"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)


class MembershipInline(admin.TabularInline):
    model = CityMembership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(City)
class CityAdmin(admin.ModelAdmin):
    list_display = ["slug", "name_zh", "name_en", "code", "is_active"]
    search_fields = ["slug", "name_zh", "name_en"]
    inlines = [MembershipInline]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        audit_record(
            action="city.update" if change else "city.create",
            actor=request.user,
            target=obj,
            data={"changed": form.changed_data},
            ip=request.META.get("REMOTE_ADDR"),
        )


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "city",
        "seq",
        "actor_label",
        "action",
        "target_type",
        "target_id",
    ]
    list_filter = ["city", "action"]
    search_fields = ["action", "actor_label", "target_id"]
    list_select_related = ["city"]
