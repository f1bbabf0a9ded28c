"""The data-center console's webhooks (/dc/<slug>/webhooks/): register an endpoint for
the events it wants (its secret shown once), revoke it, see each delivery with its
response code, and send an event again."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_cache_control
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from compute import selectors
from compute.forms import ReasonForm
from compute.models import DataCenter
from compute.views.common import confirm
from compute.webhooks.models import WebhookEvent
from compute.webhooks.selectors import (
    webhook_delivery_get,
    webhook_delivery_list,
    webhook_endpoint_get,
    webhook_endpoint_list,
)
from compute.webhooks.services import delivery_redeliver, endpoint_create, endpoint_revoke
from portal.errors import DomainError
from portal.forms import apply_domain_error
from portal.http import SignedInRequest, page_of


class WebhookEndpointForm(forms.Form):
    url = forms.URLField(label=gettext_lazy("Endpoint URL"), max_length=500)
    events = forms.MultipleChoiceField(
        label=gettext_lazy("Events"),
        choices=WebhookEvent.choices,
        widget=forms.CheckboxSelectMultiple,
    )


def _operated(request: SignedInRequest, slug: str) -> DataCenter:
    return selectors.data_center_get(operator=request.user, slug=slug)


@login_required
def console_webhooks(request: SignedInRequest, slug: str) -> HttpResponse:
    dc = _operated(request, slug)
    form = WebhookEndpointForm(request.POST or None)
    secret = None
    if request.method == "POST" and form.is_valid():
        try:
            _endpoint, secret = endpoint_create(
                data_center=dc,
                actor=request.user,
                url=form.cleaned_data["url"],
                events=form.cleaned_data["events"],
            )
            form = WebhookEndpointForm()
        except DomainError as error:
            apply_domain_error(form, error)
    response = render(
        request,
        "compute/console_webhooks.html",
        {
            "dc": dc,
            "form": form,
            "secret": secret,
            "endpoints": webhook_endpoint_list(data_center=dc),
            "page": page_of(request, webhook_delivery_list(data_center=dc)),
        },
    )
    if secret:
        # The secret is in this page, once: no browser or proxy may keep a copy.
        patch_cache_control(response, no_store=True, private=True)
    return response


@login_required
def console_webhook_revoke(request: SignedInRequest, slug: str, pk: int) -> HttpResponse:
    dc = _operated(request, slug)
    endpoint = webhook_endpoint_get(data_center=dc, pk=pk)
    back = f"/dc/{dc.slug}/webhooks/"
    return confirm(
        request,
        title=_("Revoke the webhook endpoint"),
        message=_("%(url)s will get no more events.") % {"url": endpoint.url},
        form=ReasonForm(request.POST or None),
        back=back,
        action=lambda data: endpoint_revoke(endpoint=endpoint, actor=request.user),
        done=_("The endpoint was revoked."),
        redirect_to=back,
    )


@login_required
def console_webhook_redeliver(request: SignedInRequest, slug: str, pk: int) -> HttpResponse:
    dc = _operated(request, slug)
    delivery = webhook_delivery_get(data_center=dc, pk=pk)
    back = f"/dc/{dc.slug}/webhooks/"
    return confirm(
        request,
        title=_("Send the event again"),
        message=_(
            "%(event)s (%(id)s) is sent to %(url)s again, with the same event id: a "
            "receiver that has it already ignores it."
        )
        % {
            "event": delivery.get_event_display(),
            "id": delivery.event_id,
            "url": delivery.endpoint.url,
        },
        form=ReasonForm(request.POST or None),
        back=back,
        action=lambda data: delivery_redeliver(delivery=delivery, actor=request.user),
        done=_("The event is on its way again."),
        redirect_to=back,
    )
