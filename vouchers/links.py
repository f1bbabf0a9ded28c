"""The vouchers app's links on the portal's pages (portal.links), registered by
`VouchersConfig.ready()`."""

from __future__ import annotations

import functools

from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from portal.citytime import city_date, city_datetime
from portal.links import (
    Link,
    Tally,
    WorkList,
    link_group_register,
    link_register,
    work_list_register,
)
from portal.models import Role
from portal.tenancy import roles_in_city
from vouchers import outcome_selectors, selectors, worklists
from vouchers.models import ApplicationState, OutcomeState, Review
from vouchers.worklists import TODO_ROLES, Todo

S = ApplicationState

# How many items a work list shows; the rest are behind its "show all" link.
FIRST = 5


def _application_links(city, applications) -> list[Link]:
    return [
        Link(
            label=f"#{a.pk} {a.company.legal_name} · {a.program.name}",
            url=reverse("vouchers:staff_application", args=[city.slug, a.pk]),
        )
        for a in applications[:50]
    ]


def waiting_days(since) -> str:
    if since is None:
        return ""
    days = (timezone.now() - since).days
    if days < 1:
        return gettext("waiting under a day")
    return ngettext("waiting %(n)s day", "waiting %(n)s days", days) % {"n": days}


def _label(application) -> str:
    return f"#{application.pk} {application.company.legal_name} · {application.program.name}"


def _application_work(request, todo: str) -> WorkList | None:
    """One work list of applications for the staff home, or None if none of the user's
    roles in the city acts on it."""
    city, user = request.city, request.user
    roles = roles_in_city(user, city)
    if not roles & TODO_ROLES[todo]:
        return None
    apps = selectors.application_list(city=city).filter(
        worklists.todo_filter(todo, user=user, roles=roles)
    )

    def links() -> list[Link]:
        found = []
        for a in apps.order_by("submitted_at", "pk")[:FIRST]:
            if todo == Todo.NOTICE_WAITING:
                now = timezone.now()
                if a.notice_ends_at and a.notice_ends_at > now:
                    detail = gettext("notice ends at %(when)s") % {
                        "when": city_datetime(a.notice_ends_at, city)
                    }
                else:
                    detail = gettext("an objection is open")
            else:
                detail = waiting_days(a.submitted_at)
            found.append(
                Link(
                    label=_label(a),
                    url=reverse("vouchers:staff_application", args=[city.slug, a.pk]),
                    detail=detail,
                )
            )
        return found

    if todo == Todo.SCREEN:  # exact, from the state counts PostgreSQL keeps
        count = Tally(
            selectors.application_state_count_rows(city=city, states=[S.SUBMITTED, S.SCREENING]),
            total="n",
        )
    else:
        count = Tally(apps, capped=True)
    return WorkList(
        count=count,
        links=links,
        all_url=reverse("vouchers:queue", args=[city.slug]) + f"?todo={todo}",
    )


def _review_work(request) -> WorkList | None:
    """The reviews assigned to the user and not yet submitted, longest waiting first."""
    city, user = request.city, request.user
    if Role.REVIEWER not in roles_in_city(user, city):
        return None
    apps = selectors.application_list(city=city).filter(worklists.assigned_filter(user))
    reviews = (
        Review.objects.filter(application__in=apps, reviewer=user)
        .select_related("application__company", "application__program")
        .order_by("assigned_at", "pk")[:FIRST]
    )
    return WorkList(
        count=Tally(apps, capped=True),
        links=lambda: [
            Link(
                label=_label(r.application),
                url=reverse("vouchers:staff_application", args=[city.slug, r.application_id]),
                detail=waiting_days(r.assigned_at),
            )
            for r in reviews
        ],
        all_url=reverse("vouchers:queue", args=[city.slug]) + "?assigned=me",
    )


def _company_detail(application) -> str:
    if application.state == ApplicationState.AWARDED and application.award_expires_at:
        return gettext("accept by %(when)s") % {
            "when": city_datetime(application.award_expires_at, application.city)
        }
    return application.title


def _company_work(request, state: str) -> WorkList | None:
    if not request.user.is_authenticated:
        return None
    apps = selectors.application_list(user=request.user).filter(state=state)
    first = apps.order_by("updated_at", "pk")[:FIRST]
    return WorkList(
        count=Tally(apps),
        links=lambda: [
            Link(
                label=f"#{a.pk} {a.city.name} · {a.program.name}",
                url=reverse("vouchers:application", args=[a.pk]),
                detail=_company_detail(a),
            )
            for a in first
        ],
        all_url=reverse("vouchers:company_home") + f"?state={state}#applications",
    )


def _outcome_detail(report, today) -> str:
    due = city_date(report.due_on, report.city)
    if report.state == OutcomeState.RETURNED:
        return gettext("returned for changes, due %(when)s") % {"when": due}
    if report.due_on < today:
        return gettext("overdue since %(when)s") % {"when": due}
    return gettext("due %(when)s") % {"when": due}


def _company_outcome_work(request) -> WorkList | None:
    """The company's outcome reports due within two weeks, overdue or returned."""
    if not request.user.is_authenticated:
        return None
    today = timezone.localdate()
    reports = outcome_selectors.outcome_report_todo_list(user=request.user, today=today)
    return WorkList(
        count=Tally(reports),
        links=lambda: [
            Link(
                label=f"{r.voucher.code} · {r.get_stage_display()} · {r.program.name}",
                url=reverse("vouchers:my_outcome", args=[r.pk]),
                detail=_outcome_detail(r, today),
            )
            for r in reports[:FIRST]
        ],
        all_url=reverse("vouchers:my_outcomes") + "?todo=1",
    )


def _staff_outcome_work(request) -> WorkList | None:
    """Submitted and resubmitted reports, for the city's program managers."""
    city = request.city
    if Role.PROGRAM_MANAGER not in roles_in_city(request.user, city):
        return None
    reports = outcome_selectors.outcome_report_list(
        city=city, show=outcome_selectors.SHOW_WAITING
    ).order_by("submitted_at", "pk")
    return WorkList(
        count=Tally(reports),
        links=lambda: [
            Link(
                label=f"{r.company.legal_name} · {r.voucher.code} · {r.get_stage_display()}",
                url=reverse("vouchers:staff_outcome", args=[city.slug, r.pk]),
                detail=waiting_days(r.submitted_at),
            )
            for r in reports[:FIRST]
        ],
        all_url=reverse("vouchers:staff_outcomes", args=[city.slug]) + "?show=waiting",
    )


def links_register() -> None:
    link_register(
        "portal.user_nav",
        name="vouchers.company_home",
        label=_("My company"),
        url=lambda request: reverse("vouchers:company_home"),
    )
    link_register(
        "portal.staff_nav",
        name="vouchers.queue",
        label=_("Applications"),
        url=lambda city: reverse("vouchers:queue", args=[city.slug]),
    )
    link_register(
        "portal.staff_nav",
        name="vouchers.staff_programs",
        label=_("Programs"),
        url=lambda city: reverse("vouchers:staff_programs", args=[city.slug]),
    )
    link_register(
        "portal.staff_nav",
        name="vouchers.staff_outcomes",
        label=_("Outcome reports"),
        url=lambda city: reverse("vouchers:staff_outcomes", args=[city.slug]),
    )
    link_register(
        "portal.city_home",
        name="vouchers.programs",
        label=_("See the programs open for applications"),
        url=lambda city: reverse("vouchers:programs", args=[city.slug]),
    )
    link_register(
        "portal.city_home",
        name="vouchers.results",
        label=_("Public results: the awards made"),
        url=lambda city: reverse("vouchers:results", args=[city.slug]),
    )
    link_group_register(
        "portal.staff_home",
        name="vouchers.without_approver",
        title=_("Applications no approver of the city may approve (each approver reviewed it)"),
        links=lambda request: _application_links(
            request.city, selectors.application_without_approver_list(city=request.city)
        ),
    )
    link_group_register(
        "portal.staff_home",
        name="vouchers.tie_break",
        title=_("Tie-breaks: evenly split reviews waiting for a program manager"),
        links=lambda request: _application_links(
            request.city,
            selectors.application_list(city=request.city).filter(state=ApplicationState.TIE_BREAK),
        ),
    )
    # Each role's work (the order is the workflow's): the staff home's lists by the
    # queue's filter, then the company home's by the application's state.
    work_list_register(
        "portal.staff_home",
        name="vouchers.screen",
        title=_("Applications to screen"),
        work=functools.partial(_application_work, todo=Todo.SCREEN),
    )
    work_list_register(
        "portal.staff_home",
        name="vouchers.my_reviews",
        title=_("Reviews assigned to me"),
        work=_review_work,
    )
    for name, title, todo in (
        ("info_answered", _("Information requests answered"), Todo.INFO_ANSWERED),
        ("objections", _("Objections to resolve"), Todo.OBJECTIONS),
        ("approve", _("Applications ready to approve"), Todo.APPROVE),
        ("notice_waiting", _("Waiting before approval"), Todo.NOTICE_WAITING),
    ):
        work_list_register(
            "portal.staff_home",
            name=f"vouchers.{name}",
            title=title,
            work=functools.partial(_application_work, todo=todo),
        )
    work_list_register(
        "portal.staff_home",
        name="vouchers.outcomes_waiting",
        title=_("Outcome reports to accept or return"),
        work=_staff_outcome_work,
    )
    for name, title, state in (
        ("awards", _("Awards to accept or decline"), ApplicationState.AWARDED),
        ("info_requested", _("Information requests to answer"), ApplicationState.INFO_REQUESTED),
        ("drafts", _("Drafts to finish and submit"), ApplicationState.DRAFT),
    ):
        work_list_register(
            "vouchers.company_home",
            name=f"vouchers.{name}",
            title=title,
            work=functools.partial(_company_work, state=state),
        )
    work_list_register(
        "vouchers.company_home",
        name="vouchers.outcomes_due",
        title=_("Outcome reports to submit"),
        work=_company_outcome_work,
    )
