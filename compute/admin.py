from django.contrib import admin

from compute.models import DataCenter


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
