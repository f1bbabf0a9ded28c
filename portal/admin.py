"""Platform admin: cities, users and staff roles; the audit trail read-only.

Changes made here go through the services, like anywhere else, so each writes its audit
event (issue #15): `ServiceAdmin` saves nothing by itself. Its subclasses call a service
from `save_model` and `save_formset`; the events of one admin save are written together
at its end (`portal.audit.audit_deferred`), after every lock its services took. Cities,
users and data centers are never deleted from here (deactivate them): a deletion would
take rows with it that no service accounts for.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import PermissionDenied
from django.db import router, transaction
from django.utils.translation import gettext_lazy as _

from portal.audit import audit_deferred
from portal.directory import city_save, user_password_set, user_save
from portal.errors import DomainError
from portal.models import AuditEvent, City, CityMembership, User
from portal.services import membership_grant, membership_revoke
from portal.signin import admin_login

# One sign-in form for the whole site, allauth's, with its failed-login limits: the
# admin's own form would be a second way in without them (portal/signin.py).
admin.site.login = admin_login  # type: ignore[method-assign]


def client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


class ReadOnlyAdmin(admin.ModelAdmin):
    """For records that only services write (audit events, ledger-side rows): the admin
    may look, never add, change or delete."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ServiceAdmin(admin.ModelAdmin):
    """For models whose changes go through services (see the module's docstring). A
    service's refusal is a 403, and nothing of the save is kept."""

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        with transaction.atomic(using=router.db_for_write(self.model)), audit_deferred():
            try:
                return super().changeform_view(request, object_id, form_url, extra_context)
            except DomainError as error:
                raise PermissionDenied(error.message) from error

    def has_delete_permission(self, request, obj=None):
        return False

    def save_related(self, request, form, formsets, change):
        # Not form.save_m2m(): the service of save_model set the relations it owns.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def save_formset(self, request, form, formset, change):
        raise NotImplementedError(f"{type(self).__name__} saves {formset.model} by a service")

    @staticmethod
    def formset_saved(formset, new=(), changed=(), deleted=()) -> None:
        """What formset.save() would have left for the admin's change message."""
        formset.new_objects, formset.changed_objects = list(new), list(changed)
        formset.deleted_objects = list(deleted)


@admin.register(User)
class UserAdmin(ServiceAdmin, DjangoUserAdmin):
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

    def save_model(self, request, obj, form, change):
        user_save(
            actor=request.user,
            user=obj,
            changed=form.changed_data,
            groups=form.cleaned_data.get("groups"),
            ip=client_ip(request),
        )

    def user_change_password(self, request, id, form_url=""):
        with transaction.atomic(using=router.db_for_write(self.model)), audit_deferred():
            response = super().user_change_password(request, id, form_url)
            if request.method == "POST" and response.status_code == 302:
                user = self.get_object(request, unquote(id))
                try:
                    user_password_set(actor=request.user, user=user, ip=client_ip(request))
                except DomainError as error:
                    raise PermissionDenied(error.message) from error
        return response


class MembershipInline(admin.TabularInline):
    """Staff roles of the city: each added, changed or removed row is a grant or a
    revocation by `portal.services` (a changed row is both)."""

    model = CityMembership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(City)
class CityAdmin(ServiceAdmin):
    list_display = ["slug", "name_zh", "name_en", "code", "is_active"]
    search_fields = ["slug", "name_zh", "name_en"]
    inlines = [MembershipInline]

    def save_model(self, request, obj, form, change):
        city_save(actor=request.user, city=obj, changed=form.changed_data, ip=client_ip(request))

    def save_formset(self, request, form, formset, change):
        if formset.model is not CityMembership:
            return super().save_formset(request, form, formset, change)
        city, ip = form.instance, client_ip(request)
        new, changed, deleted = [], [], []
        for row in formset.forms:
            old = row.instance if row.instance.pk else None
            if formset.can_delete and formset._should_delete_form(row):
                if old is not None:
                    membership_revoke(actor=request.user, membership=old, ip=ip)
                    deleted.append(old)
                continue
            if not row.has_changed():
                continue
            if old is not None:
                stored = CityMembership.objects.select_related("user", "city").get(pk=old.pk)
                membership_revoke(actor=request.user, membership=stored, ip=ip)
            granted = membership_grant(
                actor=request.user,
                city=city,
                user=row.cleaned_data["user"],
                role=row.cleaned_data["role"],
                ip=ip,
            )
            if old is None:
                new.append(granted)
            else:
                changed.append((granted, row.changed_data))
        self.formset_saved(formset, new, changed, deleted)


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
