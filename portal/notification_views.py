"""The signed-in user's notifications: the list (paged), marking one or all read, and
which kinds also come by e-mail (a form on the profile page)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from portal import notifications
from portal.http import SignedInRequest, page_of


@login_required
def notification_list(request: SignedInRequest) -> HttpResponse:
    page = page_of(request, notifications.notification_list(user=request.user), size=20)
    return render(request, "portal/notifications.html", {"page": page})


@login_required
@require_POST
def notification_read(request: SignedInRequest, pk: int) -> HttpResponse:
    """Mark read; with `open`, go on to the page it is about (a path of this site)."""
    entry = notifications.notification_get(user=request.user, pk=pk)
    notifications.notification_read(actor=request.user, notification=entry)
    if request.POST.get("open") and url_has_allowed_host_and_scheme(
        entry.path, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(entry.path)
    return redirect("portal:notifications")


@login_required
@require_POST
def notification_read_all(request: SignedInRequest) -> HttpResponse:
    notifications.notification_read_all(actor=request.user)
    messages.success(request, _("All notifications are marked read."))
    return redirect("portal:notifications")


@login_required
@require_POST
def notification_settings(request: SignedInRequest) -> HttpResponse:
    kinds = [k for k in request.POST.getlist("email") if k in notifications.KINDS]
    notifications.notification_settings_save(actor=request.user, email_kinds=kinds)
    messages.success(request, _("Your e-mail choices are saved."))
    return redirect("portal:profile")
