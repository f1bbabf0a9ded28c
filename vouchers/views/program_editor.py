"""The program editor (/<city>/staff/programs/new/ and …/<slug>/): the program's terms
as a form, its rubric, required documents and eligibility rules as rows (no JSON), and
a preview of the program's page before anything is saved.

Every check runs on every submission, so the page shows all mistakes at once: each
field and row checks itself, and the checks across fields (`program_validate`: minimum
over maximum, reviews without a rubric, …) run on whatever parsed.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from portal.errors import DomainError
from portal.forms import apply_domain_error
from portal.http import SignedInRequest
from portal.models import Role
from portal.tenancy import staff_required
from vouchers import selectors, services
from vouchers.forms import ProgramForm
from vouchers.models import Program
from vouchers.program_forms import ROW_FIELDS, program_rows


def _values(form: ProgramForm, rows: dict) -> dict:
    """What parsed: the form's clean fields and each valid formset's list."""
    values = {
        name: form.cleaned_data[name] for name in form.Meta.fields if name in form.cleaned_data
    }
    for name, formset in rows.items():
        if formset.is_valid():
            values[name] = formset.value()
    return values


def _place(form: ProgramForm, rows: dict, errors: dict[str, list[str]], row_errors: dict) -> None:
    """Cross-field and service errors beside their fields: a row list's above its rows."""
    for field, found in errors.items():
        if field in rows:
            # A list whose rows are wrong already says so row by row.
            if rows[field].is_valid():
                row_errors.setdefault(field, []).extend(found)
        elif field in form.fields:
            for message in found:
                if message not in form.errors.get(field, []):
                    form.add_error(field, message)
        else:
            form.add_error(None, found)


@staff_required(Role.PROGRAM_MANAGER)
def staff_program_edit(
    request: SignedInRequest, city_slug: str, slug: str | None = None
) -> HttpResponse:
    program = selectors.program_get(city=request.city, slug=slug) if slug else None
    data = request.POST if request.method == "POST" else None
    form = ProgramForm(data, instance=program)
    rows = program_rows(program, data)
    row_errors: dict[str, list[str]] = {}
    preview = None
    if data is not None:
        # Not short-circuited: every form and formset is checked.
        valid = all([form.is_valid(), *(formset.is_valid() for formset in rows.values())])
        values = _values(form, rows)
        errors = services.program_validate(values)
        _place(form, rows, errors, row_errors)
        if valid and not errors:
            if request.POST.get("go") == "preview":
                preview = Program(city=request.city, **values)
            else:
                try:
                    services.program_save(
                        city=request.city, actor=request.user, values=values, program=program
                    )
                except DomainError as error:
                    apply_domain_error(form, error)
                    _place(form, rows, error.fields, row_errors)
                else:
                    messages.success(request, _("Program saved."))
                    return redirect("vouchers:staff_programs", city_slug=city_slug)
        if form.errors or row_errors or not valid:
            messages.error(request, _("Please correct the fields marked below."))
    return render(
        request,
        "vouchers/staff_program_edit.html",
        {
            "city": request.city,
            "form": form,
            "rows": rows,
            "row_errors": row_errors,
            "row_fields": ROW_FIELDS,
            "program": program,
            "preview": preview,
        },
    )
