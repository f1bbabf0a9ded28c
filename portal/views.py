from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from django.views.i18n import set_language as django_set_language

from portal import selectors
from portal.errors import DomainError, error_body
from portal.http import page_of
from portal.models import Role
from portal.services import user_set_language
from portal.tenancy import staff_required


def landing(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/landing.html", {"cities": selectors.city_list()})


def city_home(request: HttpRequest, city_slug: str) -> HttpResponse:
    return render(request, "portal/city_home.html", {"city": request.city})


@staff_required()
def staff_home(request: HttpRequest, city_slug: str) -> HttpResponse:
    return render(request, "portal/staff_home.html", {"city": request.city})


@staff_required()
def staff_members(request: HttpRequest, city_slug: str) -> HttpResponse:
    page = page_of(request, selectors.membership_list(city=request.city))
    return render(request, "portal/staff_members.html", {"city": request.city, "page": page})


@staff_required(Role.AUDITOR, Role.PROGRAM_MANAGER)
def audit_log(request: HttpRequest, city_slug: str) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:100]
    events = selectors.audit_event_list(city=request.city, query=query)
    page = page_of(request, events)
    return render(
        request, "portal/audit_log.html", {"city": request.city, "page": page, "query": query}
    )


@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    """Django's language switch, remembered on the user's profile when signed in."""
    language = request.POST.get("language", "")
    if request.user.is_authenticated:
        try:
            user_set_language(user=request.user, language=language)
        except DomainError as error:
            messages.error(request, error.message)
            return redirect("portal:landing")
    return django_set_language(request)


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "portal/profile.html",
        {"memberships": selectors.membership_list(user=request.user)},
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
