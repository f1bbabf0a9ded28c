from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponsePermanentRedirect,
    JsonResponse,
)
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from django.views.i18n import set_language as django_set_language

from portal import notifications, selectors
from portal.audit_trail import audit_filters
from portal.citytime import city_zone
from portal.errors import DomainError, error_body
from portal.forms import StaffGrantForm, apply_domain_error
from portal.http import CityRequest, SignedInRequest, page_of
from portal.models import Role, StaffInvitation
from portal.services import (
    membership_invite,
    membership_revoke,
    staff_invitation_accept,
    user_set_language,
)
from portal.tenancy import has_role, staff_required


def landing(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/landing.html", {"cities": selectors.city_list()})


def city_home(request: CityRequest, city_slug: str) -> HttpResponse:
    return render(request, "portal/city_home.html", {"city": request.city})


@staff_required()
def staff_home(request: SignedInRequest, city_slug: str) -> HttpResponse:
    return render(request, "portal/staff_home.html", {"city": request.city})


def _ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


@staff_required()
def staff_members(request: SignedInRequest, city_slug: str) -> HttpResponse:
    """The city's staff and their roles. Program managers grant roles here (to an
    account, or by invitation to an address without one) and revoke them."""
    city = request.city
    can_manage = has_role(request.user, city, Role.PROGRAM_MANAGER)
    form = StaffGrantForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        if not can_manage:
            raise PermissionDenied
        if form.is_valid():
            try:
                result = membership_invite(
                    actor=request.user,
                    city=city,
                    email=form.cleaned_data["email"],
                    role=form.cleaned_data["role"],
                    ip=_ip(request),
                )
            except DomainError as error:
                apply_domain_error(form, error)
            else:
                role = Role(form.cleaned_data["role"]).label
                if isinstance(result, StaffInvitation):
                    message = _(
                        "%(email)s has no account yet: an invitation to be %(role)s was sent."
                    )
                else:
                    message = _("%(email)s is now %(role)s.")
                messages.success(
                    request, message % {"email": form.cleaned_data["email"], "role": role}
                )
                return redirect("portal:staff_members", city_slug=city.slug)
    page = page_of(request, selectors.membership_list(city=city))
    return render(
        request,
        "portal/staff_members.html",
        {
            "city": city,
            "page": page,
            "form": form,
            "can_manage": can_manage,
            "invitations": selectors.staff_invitation_list(city=city) if can_manage else [],
        },
    )


@staff_required(Role.PROGRAM_MANAGER)
def staff_member_revoke(request: SignedInRequest, city_slug: str, pk: int) -> HttpResponse:
    """The confirmation step, then the revocation (POST with confirm=yes)."""
    membership = selectors.membership_get(city=request.city, pk=pk)
    if request.method == "POST" and request.POST.get("confirm") == "yes":
        try:
            membership_revoke(actor=request.user, membership=membership, ip=_ip(request))
        except DomainError as error:
            messages.error(request, error.message)
        else:
            messages.success(
                request,
                _("%(email)s is no longer %(role)s.")
                % {"email": membership.user.email, "role": membership.get_role_display()},
            )
        return redirect("portal:staff_members", city_slug=request.city.slug)
    return render(
        request,
        "portal/staff_member_revoke.html",
        {"city": request.city, "membership": membership},
    )


@login_required
def staff_join(request: SignedInRequest, city_slug: str, token: str) -> HttpResponse:
    """An invitation's link. The page offers to accept whatever the token (as a company
    invitation's does): the invitation is looked up only on acceptance, which is a 404
    for any account but the invited address's and for a used or unknown link."""
    if request.method == "POST":
        try:
            membership = staff_invitation_accept(
                city=request.city, token=token, actor=request.user, ip=_ip(request)
            )
        except DomainError:
            raise Http404 from None
        messages.success(
            request,
            _("You are now %(role)s of %(city)s.")
            % {"role": membership.get_role_display(), "city": request.city.name},
        )
        return redirect("portal:staff_home", city_slug=request.city.slug)
    return render(request, "portal/staff_join.html", {"city": request.city})


@staff_required(Role.AUDITOR, Role.PROGRAM_MANAGER)
def audit_log(request: SignedInRequest, city_slug: str) -> HttpResponse:
    """The city's trail, filtered (portal.audit_trail) and shown with readable names
    (portal.audit_labels)."""
    form, filters = audit_filters(request, request.city)
    events = selectors.audit_event_list(city=request.city, **filters)
    return render(
        request,
        "portal/audit_log.html",
        {
            "city": request.city,
            "page": page_of(request, events),
            "form": form,
            "zone": city_zone(request.city).key,
        },
    )


@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    """Django's language switch, remembered on the user's profile when signed in."""
    language = request.POST.get("language", "")
    if request.user.is_authenticated:
        try:
            user_set_language(actor=request.user, language=language)
        except DomainError as error:
            messages.error(request, error.message)
            return redirect("portal:landing")
    return django_set_language(request)


@login_required
def profile(request: SignedInRequest) -> HttpResponse:
    return render(
        request,
        "portal/profile.html",
        {
            "memberships": selectors.membership_list(user=request.user),
            "notification_kinds": [
                (kind, label, notifications.email_wanted(request.user, kind))
                for kind, label in notifications.KINDS.items()
            ],
        },
    )


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def error_404(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):  # clients of the API get its error body, never HTML
        return JsonResponse(error_body("not_found", _("Not found.")), status=404)
    return render(request, "404.html", status=404)


def error_403(request: HttpRequest, exception: Exception) -> HttpResponse:
    return render(request, "403.html", status=403)


def error_500(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(
            error_body("server_error", _("Something went wrong; it has been logged.")), status=500
        )
    # No context processors that touch the database: the error may be the database.
    from django.template import loader

    return HttpResponse(loader.get_template("500.html").render({}), status=500)


def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico whatever the page says: send them to the static
    file (resolved per request, so a hashed name from the manifest is found)."""
    return HttpResponsePermanentRedirect(static("icons/favicon.ico"))
