"""Exports of the vouchers app's lists (issue #12 item 7): the application queue as
filtered on screen, awards, vouchers and ledger entries, as CSV or XLSX
(`portal.exports` streams them and audits each as `export.<kind>`).

Who exports what: the city's program managers and auditors export the city; any other
staff role exports the queue only as their own (the applications they are assigned to
review); a company's members export their own vouchers and ledger. Another city's staff,
another company's members and outsiders get a 404.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.postgres.aggregates import StringAgg
from django.db.models import F, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, NullIf
from django.http import Http404, HttpResponseBase
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from portal.citytime import city_zone
from portal.exports import (
    ExportFormat,
    export_filters,
    export_response,
    keyset_rows,
    labelled,
    local_time,
)
from portal.http import SignedInRequest
from portal.models import Role
from portal.stored_text import actor_text, memo_text
from portal.tenancy import has_role, staff_required
from vouchers import selectors
from vouchers.forms import QueueForm
from vouchers.models import (
    Application,
    ApplicationState,
    EligibilityResult,
    EntryKind,
    LedgerEntry,
    Review,
    Voucher,
    VoucherStatus,
)

CITY_EXPORTERS = (Role.PROGRAM_MANAGER, Role.AUDITOR)


def _format(fmt: str) -> str:
    if fmt not in {f.value for f in ExportFormat}:
        raise Http404
    return fmt


def _program_name() -> str:
    return "program__name_zh" if (get_language() or "").startswith("zh") else "program__name_en"


# --- the application queue ------------------------------------------------------------------


def _reviewer_names() -> Subquery:
    """The assigned reviewers' names in one cell, in the order they were assigned (as
    the queue lists them)."""
    names = (
        Review.objects.filter(application=OuterRef("pk"))
        .values("application")
        .annotate(
            names=StringAgg(
                Coalesce(NullIf(F("reviewer__display_name"), Value("")), F("reviewer__email")),
                ", ",
                order_by=("assigned_at", "pk"),
            )
        )
        .values("names")
    )
    return Subquery(names)


def application_export_rows(queryset: QuerySet[Application]) -> Iterator[tuple]:
    """The queue's rows as its table shows them (ids, names, labels, hidden scores
    empty), read through a server-side cursor."""
    state = labelled(ApplicationState.choices)
    eligibility = labelled(EligibilityResult.choices)
    rows = (
        queryset.prefetch_related(None)
        .annotate(reviewer_names=_reviewer_names())
        .values_list(
            "pk",
            "company__legal_name",
            "company__credit_code",
            _program_name(),
            "state",
            "eligibility",
            "reviewer_names",
            "average",
            "requested_amount",
            "submitted_at",
        )
    )
    for (
        pk,
        name,
        code,
        program,
        st,
        elig,
        reviewers,
        average,
        requested,
        submitted,
    ) in rows.iterator(chunk_size=2000):
        if average is not None:
            average = round(average, 2)
        yield (
            pk,
            name,
            code,
            program,
            state(st),
            eligibility(elig),
            reviewers,
            average,
            requested,
            submitted,
        )


def application_export_queryset(request: SignedInRequest) -> tuple[QuerySet[Application], dict]:
    """The queue exactly as `views.queue` filters it for this request (its form, its
    selector), narrowed to the user's own assignments unless they may export the city."""
    reviewers = selectors.reviewer_list(city=request.city)
    form = QueueForm(request.GET or None, city=request.city, reviewers=reviewers)
    filters = form.cleaned_data if form.is_valid() else {}
    apps = selectors.application_queue_list(city=request.city, user=request.user, filters=filters)
    audited = export_filters(filters)
    if not has_role(request.user, request.city, *CITY_EXPORTERS):
        apps = apps.filter(
            pk__in=Review.objects.filter(reviewer=request.user).values("application")
        )
        audited["own_queue"] = True
    return apps, audited


@staff_required()
def application_export(request: SignedInRequest, city_slug: str, fmt: str) -> HttpResponseBase:
    fmt = _format(fmt)
    apps, filters = application_export_queryset(request)
    headers = [
        "#",
        _("Company"),
        _("Credit code"),
        _("Program"),
        _("State"),
        _("Eligibility"),
        _("Reviewers"),
        _("Average score"),
        _("Requested"),
        _("Submitted"),
    ]
    return export_response(
        request,
        kind="applications",
        fmt=fmt,
        headers=headers,
        rows=application_export_rows(apps),
        filename=f"applications-{request.city.slug}",
        filters=filters,
        city=request.city,
    )


# --- awards -----------------------------------------------------------------------------------


@staff_required(*CITY_EXPORTERS)
def award_export(request: SignedInRequest, city_slug: str, fmt: str) -> HttpResponseBase:
    """Approved applications: who was awarded how much, when, and the voucher issued."""
    fmt = _format(fmt)
    filters: dict = {}
    awards = selectors.application_list(city=request.city).filter(state=ApplicationState.APPROVED)
    program = request.GET.get("program", "")
    if program:
        awards = awards.filter(program__slug=program)
        filters["program"] = program
    rows = awards.order_by("decided_at", "pk").values_list(
        "pk",
        "company__legal_name",
        "company__credit_code",
        _program_name(),
        "requested_amount",
        "awarded_amount",
        "decided_at",
        "voucher__code",
    )
    headers = [
        "#",
        _("Company"),
        _("Credit code"),
        _("Program"),
        _("Requested"),
        _("Awarded"),
        _("Decided at"),
        _("Voucher"),
    ]
    return export_response(
        request,
        kind="awards",
        fmt=fmt,
        headers=headers,
        rows=rows.iterator(chunk_size=2000),
        filename=f"awards-{request.city.slug}",
        filters=filters,
        city=request.city,
    )


# --- vouchers and their ledger ----------------------------------------------------------------


def _voucher_filters(request: SignedInRequest) -> dict:
    """The voucher list's search and status (as its form reads them)."""
    query = request.GET.get("q", "").strip()[:100]
    status = request.GET.get("status", "")
    return {"query": query, "status": status if status in VoucherStatus.values else ""}


def _voucher_rows(vouchers: QuerySet[Voucher]) -> Iterator[tuple]:
    status = labelled(VoucherStatus.choices)
    rows = vouchers.order_by("-issued_at", "-pk").values_list(
        "code",
        "company__legal_name",
        "company__credit_code",
        _program_name(),
        "face_value",
        "balance",
        "status",
        "valid_from",
        "valid_until",
        "issued_at",
    )
    for code, name, credit, program, face, balance, st, start, end, issued in rows.iterator(
        chunk_size=2000
    ):
        yield code, name, credit, program, face, balance, status(st), start, end, issued


def _voucher_headers() -> list[str]:
    return [
        _("Code"),
        _("Company"),
        _("Credit code"),
        _("Program"),
        _("Face value"),
        _("Balance"),
        _("Status"),
        _("Valid from"),
        _("Valid until"),
        _("Issued at"),
    ]


def _ledger_rows(entries: QuerySet[LedgerEntry], zone: str) -> Iterator[tuple]:
    kind = labelled(EntryKind.choices)
    entries = entries.annotate(at=local_time("created_at", zone))
    fields = [
        "id",
        "voucher__code",
        "kind",
        "amount",
        "balance_after",
        "actor_label",
        "usage_record_id",
        "memo",
        "at",
    ]
    for pk, code, k, amount, after, actor, record, memo, at in keyset_rows(entries, fields):
        yield pk, code, kind(k), amount, after, actor_text(actor), record, memo_text(memo), at


def _ledger_headers() -> list[str]:
    return [
        "#",
        _("Voucher"),
        _("Kind"),
        _("Amount"),
        _("Balance after"),
        _("Actor"),
        _("Usage record"),
        _("Memo"),
        _("Time"),
    ]


@staff_required(*CITY_EXPORTERS)
def voucher_export(request: SignedInRequest, city_slug: str, fmt: str) -> HttpResponseBase:
    fmt = _format(fmt)
    filters = _voucher_filters(request)
    vouchers = selectors.voucher_list(city=request.city, **filters)
    return export_response(
        request,
        kind="vouchers",
        fmt=fmt,
        headers=_voucher_headers(),
        rows=_voucher_rows(vouchers),
        filename=f"vouchers-{request.city.slug}",
        filters=export_filters(filters),
        city=request.city,
    )


def _entries_of(vouchers: QuerySet[Voucher], code: str) -> QuerySet[LedgerEntry]:
    """The entries of `vouchers` (one of them if `code`: another's code is a 404)."""
    if code:
        vouchers = vouchers.filter(code=code)
        if not vouchers.exists():
            raise Http404
    return LedgerEntry.objects.filter(voucher__in=vouchers.values("pk"))


@staff_required(*CITY_EXPORTERS)
def ledger_export(request: SignedInRequest, city_slug: str, fmt: str) -> HttpResponseBase:
    fmt = _format(fmt)
    code = request.GET.get("voucher", "").strip()[:24]
    entries = _entries_of(Voucher.objects.filter(city=request.city), code)
    return export_response(
        request,
        kind="ledger",
        fmt=fmt,
        headers=_ledger_headers(),
        rows=_ledger_rows(entries, city_zone(request.city).key),
        filename=f"ledger-{request.city.slug}" + (f"-{code}" if code else ""),
        filters={"voucher": code} if code else {},
        city=request.city,
    )


# --- a company's own ----------------------------------------------------------------------


def _company_vouchers(request: SignedInRequest) -> QuerySet[Voucher]:
    vouchers = selectors.voucher_list(user=request.user)
    if not vouchers.exists():  # no company, or none with a voucher: nothing to export
        raise Http404
    return vouchers


@login_required
def my_voucher_export(request: SignedInRequest, fmt: str) -> HttpResponseBase:
    fmt = _format(fmt)
    vouchers = _company_vouchers(request)
    return export_response(
        request,
        kind="vouchers",
        fmt=fmt,
        headers=_voucher_headers(),
        rows=_voucher_rows(vouchers),
        filename="my-vouchers",
        filters={},
        scope={"companies": sorted({c for c in vouchers.values_list("company_id", flat=True)})},
    )


@login_required
def my_ledger_export(request: SignedInRequest, fmt: str) -> HttpResponseBase:
    fmt = _format(fmt)
    vouchers = _company_vouchers(request)
    code = request.GET.get("voucher", "").strip()[:24]
    entries = _entries_of(vouchers, code)
    return export_response(
        request,
        kind="ledger",
        fmt=fmt,
        headers=_ledger_headers(),
        rows=_ledger_rows(entries, settings.TIME_ZONE),
        filename="my-ledger" + (f"-{code}" if code else ""),
        filters={"voucher": code} if code else {},
        scope={"companies": sorted({c for c in vouchers.values_list("company_id", flat=True)})},
    )
