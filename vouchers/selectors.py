"""Reads of the vouchers app, scoped so another city's or another company's objects are
simply not there (a 404 by construction)."""

from __future__ import annotations

from django.db.models import Avg, Count, F, Prefetch, Q, QuerySet
from django.utils import timezone

from portal.models import City, Role, User
from vouchers.models import (
    Application,
    ApplicationState,
    Company,
    Program,
    ProgramStatus,
    Review,
)


def companies_of(*, user: User) -> QuerySet[Company]:
    if not user.is_authenticated:
        return Company.objects.none()
    return Company.objects.filter(members=user)


def applications_of(*, user: User) -> QuerySet[Application]:
    if not user.is_authenticated:
        return Application.objects.none()
    return Application.objects.filter(company__members=user).select_related(
        "program", "company", "city"
    )


def programs_open(*, city: City) -> QuerySet[Program]:
    now = timezone.now()
    return Program.objects.filter(city=city, status=ProgramStatus.OPEN).filter(
        Q(opens_at__isnull=True) | Q(opens_at__lte=now),
        Q(closes_at__isnull=True) | Q(closes_at__gte=now),
    )


def city_programs(*, city: City) -> QuerySet[Program]:
    return Program.objects.filter(city=city)


def city_applications(*, city: City) -> QuerySet[Application]:
    """Staff see everything but drafts, which are the company's own until submitted."""
    return (
        Application.objects.filter(city=city)
        .exclude(state=ApplicationState.DRAFT)
        .select_related("program", "company")
    )


def reviewers_of(*, city: City) -> QuerySet[User]:
    return User.objects.filter(memberships__city=city, memberships__role=Role.REVIEWER).distinct()


def application_queue(*, city: City, filters: dict) -> QuerySet[Application]:
    apps = (
        city_applications(city=city)
        .annotate(
            review_count=Count(
                "reviews", filter=Q(reviews__submitted_at__isnull=False), distinct=True
            ),
            average=Avg("reviews__total", filter=Q(reviews__submitted_at__isnull=False)),
        )
        .prefetch_related(
            Prefetch(
                "reviews", queryset=Review.objects.select_related("reviewer"), to_attr="assignments"
            )
        )
    )
    if filters.get("q"):
        q = filters["q"].strip()
        apps = apps.filter(Q(company__legal_name__icontains=q) | Q(company__credit_code__iexact=q))
    if filters.get("program"):
        apps = apps.filter(program=filters["program"])
    if filters.get("state"):
        apps = apps.filter(state=filters["state"])
    if filters.get("assignee"):
        apps = apps.filter(reviews__reviewer=filters["assignee"])
    if filters.get("eligibility"):
        apps = apps.filter(eligibility=filters["eligibility"])
    sort = filters.get("sort") or "-submitted_at"
    if sort == "-average":  # unscored applications last, not first as PostgreSQL would
        return apps.order_by(F("average").desc(nulls_last=True), "-id")
    return apps.order_by(sort, "-id")


def program_ranking(*, program: Program) -> QuerySet[Application]:
    """Applications of a program by their average review score, best first."""
    return (
        Application.objects.filter(program=program)
        .exclude(state__in=[ApplicationState.DRAFT, ApplicationState.WITHDRAWN])
        .select_related("company")
        .annotate(
            average=Avg("reviews__total", filter=Q(reviews__submitted_at__isnull=False)),
            review_count=Count("reviews", filter=Q(reviews__submitted_at__isnull=False)),
        )
        .order_by("-average", "submitted_at")
    )


def notice_list(*, program: Program) -> QuerySet[Application]:
    """What the public notice shows: applications whose notice period is running. Once
    it has ended they wait for the approver, out of the public list."""
    return (
        Application.objects.filter(
            program=program,
            state=ApplicationState.IN_NOTICE,
            notice_ends_at__gt=timezone.now(),
        )
        .select_related("company")
        .order_by("notice_ends_at")
    )
