"""A draft's documents on the application form's documents step: remove one, or replace
its file (issue #13 item 9). Uploading a new one is the step's own form."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from portal.errors import DomainError
from portal.http import SignedInRequest
from vouchers import selectors, services


class ReplaceForm(forms.Form):
    file = forms.FileField(label=gettext_lazy("New file (PDF, PNG or JPEG, at most 20 MB)"))


def _back(pk: int) -> HttpResponse:
    return redirect(f"{reverse('vouchers:application', kwargs={'pk': pk})}?step=documents")


def _refused(request: SignedInRequest, error: DomainError) -> None:
    messages.error(request, error.message)
    for found in error.fields.values():
        for message in found:
            if message != error.message:
                messages.error(request, message)


@login_required
@require_POST
def document_remove(request: SignedInRequest, pk: int, document_id: int) -> HttpResponse:
    app = selectors.application_get(user=request.user, pk=pk)
    document = selectors.document_get(application=app, pk=document_id)
    try:
        services.document_remove(application=app, actor=request.user, document=document)
    except DomainError as error:
        _refused(request, error)
    else:
        messages.success(
            request, _("Document removed: %(name)s.") % {"name": document.original_name}
        )
    return _back(app.pk)


@login_required
@require_POST
def document_replace(request: SignedInRequest, pk: int, document_id: int) -> HttpResponse:
    app = selectors.application_get(user=request.user, pk=pk)
    document = selectors.document_get(application=app, pk=document_id)
    form = ReplaceForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, _("Choose the new file first."))
        return _back(app.pk)
    try:
        new = services.document_replace(
            application=app, actor=request.user, document=document, upload=form.cleaned_data["file"]
        )
    except DomainError as error:
        _refused(request, error)
    else:
        messages.success(
            request,
            _("%(old)s was replaced by %(new)s.")
            % {"old": document.original_name, "new": new.original_name},
        )
    return _back(app.pk)
