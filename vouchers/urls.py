"""URLs of the application workflow: the company's pages under /company/, a city's
public program pages and its staff pages under /<city_slug>/."""

from django.urls import include, path

from vouchers import views
from vouchers.views import (
    application_documents,
    decisions,
    exports,
    outcomes,
    program_editor,
    results,
)

app_name = "vouchers"


def _exports(prefix: str, view, name: str) -> list:
    """`<prefix>.csv` and `<prefix>.xlsx` for one export view (the format as a fixed
    argument, not a URL parameter)."""
    return [
        path(f"{prefix}.{fmt}", view, {"fmt": fmt}, name=f"{name}_{fmt}") for fmt in ("csv", "xlsx")
    ]


site_patterns = [
    path("company/", views.company_home, name="company_home"),
    path("company/<int:pk>/", views.company_detail, name="company"),
    path("company/join/<str:token>/", views.invitation_accept, name="invitation"),
    path("company/applications/<int:pk>/", views.application, name="application"),
    path(
        "company/applications/<int:pk>/<slug:action>/",
        views.application_action,
        name="application_action",
    ),
    path(
        "company/applications/<int:pk>/documents/<int:document_id>/",
        views.my_document,
        name="my_document",
    ),
    *_exports("company/exports/vouchers", exports.my_voucher_export, "my_voucher_export"),
    *_exports("company/exports/ledger", exports.my_ledger_export, "my_ledger_export"),
    path(
        "company/applications/<int:pk>/award/<slug:answer>/",
        decisions.award_answer,
        name="award",
    ),
    path(
        "company/applications/<int:pk>/letters/<int:letter_id>/",
        decisions.my_letter,
        name="my_letter",
    ),
    path(
        "company/applications/<int:pk>/documents/<int:document_id>/remove/",
        application_documents.document_remove,
        name="document_remove",
    ),
    path(
        "company/applications/<int:pk>/documents/<int:document_id>/replace/",
        application_documents.document_replace,
        name="document_replace",
    ),
    path("company/outcomes/", outcomes.my_outcomes, name="my_outcomes"),
    path("company/outcomes/<int:pk>/", outcomes.my_outcome, name="my_outcome"),
    path(
        "company/outcomes/<int:pk>/documents/",
        outcomes.my_outcome_document_add,
        name="my_outcome_document_add",
    ),
    path(
        "company/outcomes/<int:pk>/documents/<int:document_id>/",
        outcomes.my_outcome_document,
        name="my_outcome_document",
    ),
    path(
        "company/outcomes/<int:pk>/documents/<int:document_id>/remove/",
        outcomes.my_outcome_document_remove,
        name="my_outcome_document_remove",
    ),
]

city_patterns = [
    path("programs/", views.programs, name="programs"),
    path("programs/<slug:slug>/", views.program_detail, name="program"),
    path("programs/<slug:slug>/notice/", views.notice, name="notice"),
    path("programs/<slug:slug>/results/", results.program_results, name="program_results"),
    path("results/", results.results_index, name="results"),
    path("staff/applications/", views.queue, name="queue"),
    path("staff/applications/<int:pk>/", views.staff_application, name="staff_application"),
    path(
        "staff/applications/<int:pk>/documents/<int:document_id>/",
        views.staff_document,
        name="staff_document",
    ),
    path(
        "staff/applications/<int:pk>/letters/<int:letter_id>/",
        decisions.staff_letter,
        name="staff_letter",
    ),
    path(
        "staff/applications/<int:pk>/do/<slug:action>/",
        views.staff_action,
        name="staff_action",
    ),
    path("staff/programs/", views.staff_programs, name="staff_programs"),
    path("staff/programs/new/", program_editor.staff_program_edit, name="staff_program_new"),
    path(
        "staff/programs/<slug:slug>/",
        program_editor.staff_program_edit,
        name="staff_program_edit",
    ),
    path("staff/programs/<slug:slug>/ranking/", views.staff_ranking, name="staff_ranking"),
    *_exports("staff/exports/applications", exports.application_export, "application_export"),
    *_exports("staff/exports/awards", exports.award_export, "award_export"),
    *_exports("staff/exports/vouchers", exports.voucher_export, "voucher_export"),
    *_exports("staff/exports/ledger", exports.ledger_export, "ledger_export"),
    path(
        "staff/programs/<slug:slug>/letters/",
        decisions.staff_letter_templates,
        name="staff_letter_templates",
    ),
    path("staff/outcomes/", outcomes.staff_outcomes, name="staff_outcomes"),
    path("staff/outcomes/<int:pk>/", outcomes.staff_outcome, name="staff_outcome"),
    path(
        "staff/outcomes/<int:pk>/do/<slug:action>/",
        outcomes.staff_outcome_action,
        name="staff_outcome_action",
    ),
    path(
        "staff/outcomes/<int:pk>/documents/<int:document_id>/",
        outcomes.staff_outcome_document,
        name="staff_outcome_document",
    ),
]

urlpatterns = [*site_patterns, path("<slug:city_slug>/", include(city_patterns))]
