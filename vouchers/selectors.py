"""Reads of the vouchers app, scoped so another city's or another company's objects are
simply not there (a 404 by construction). Names and scopes as in `portal.selectors`:
`<noun>_list` returns a queryset, `<noun>_get` one object or `Http404`."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from django.db.models import (
    Avg,
    BooleanField,
    Case,
    Count,
    DecimalField,
    ExpressionWrapper,
    F,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
    Window,
)
from django.db.models.functions import Coalesce, Rank, Round
from django.shortcuts import get_object_or_404
from django.utils import timezone

from portal.models import City, Role, User
from portal.selectors import one_scope
from portal.tenancy import roles_in_city
from vouchers import worklists
from vouchers.models import (
    Application,
    ApplicationState,
    Company,
    CompanyMember,
    Document,
    LedgerEntry,
    Objection,
    Program,
    ProgramStateCount,
    ProgramStatus,
    Review,
    Voucher,
)
from vouchers.workflow import (
    no_eligible_approver_candidates,
    no_eligible_approver_filter,
    reviews_visible,
    reviews_visible_filter,
)

# --- companies ---------------------------------------------------------------------------


def company_list(*, user: User | AnonymousUser) -> QuerySet[Company]:
    """The companies the user is a member of."""
    if not user.is_authenticated:
        return Company.objects.none()
    return Company.objects.filter(members=user)


def company_get(*, user: User, pk: int) -> Company:
    return get_object_or_404(company_list(user=user), pk=pk)


def company_member_list(*, company: Company) -> QuerySet[CompanyMember]:
    return company.companymember_set.select_related("user")


# --- programs --------------------------------------------------------------------------------


def program_list(*, city: City, only_open: bool = False) -> QuerySet[Program]:
    """The city's programs; `only_open`: those taking applications now (the public list)."""
    programs = Program.objects.filter(city=city)
    if only_open:
        now = timezone.now()
        programs = programs.filter(
            Q(opens_at__isnull=True) | Q(opens_at__lte=now),
            Q(closes_at__isnull=True) | Q(closes_at__gte=now),
            status=ProgramStatus.OPEN,
        )
    return programs


def program_get(*, city: City, slug: str, only_open: bool = False) -> Program:
    return get_object_or_404(program_list(city=city, only_open=only_open), slug=slug)


def program_results_list(*, city: City) -> QuerySet[Program]:
    """The city's programs whose results are public: published (not a draft) and not
    kept from the public by the program (`publish_results`)."""
    return program_list(city=city).filter(publish_results=True).exclude(status=ProgramStatus.DRAFT)


def program_results_get(*, city: City, slug: str) -> Program:
    return get_object_or_404(program_results_list(city=city), slug=slug)


def _published_awards(program: Program) -> QuerySet[Application]:
    now = timezone.now()
    return Application.objects.filter(program=program, state=ApplicationState.APPROVED).filter(
        Q(notice_ends_at__isnull=True) | Q(notice_ends_at__lte=now)
    )


def award_result_totals(*, program: Program) -> dict:
    """How many awards `award_result_list` lists and their sum (`n`, `total`), in one
    query without its join to the companies."""
    return _published_awards(program).aggregate(n=Count("pk"), total=Sum("awarded_amount"))


def award_result_list(*, program: Program) -> QuerySet:
    """What the public results page shows of a program's awards, and nothing more: the
    company's name and credit code, the amount and the decision date of each approved
    application whose public notice (if it had one) has ended, oldest decision first.
    Rows of plain values, so no template can reach a document, a score or a person."""
    return (
        _published_awards(program)
        .order_by("decided_at", "pk")
        .values("pk", "company__legal_name", "company__credit_code", "awarded_amount", "decided_at")
    )


# --- applications ----------------------------------------------------------------------------


def application_list(
    *,
    user: User | None = None,
    city: City | None = None,
    pks: list[int] | None = None,
    state: str = "",
) -> QuerySet[Application]:
    """The applications of the user's companies (newest first), or (staff) the city's
    applications but drafts, which are the company's own until submitted; `state` (if a
    state at all) keeps that state's."""
    if one_scope(user=user, city=city) == "user":
        if user is None or not user.is_authenticated:
            return Application.objects.none()
        apps = (
            Application.objects.filter(company__members=user)
            .select_related("program", "company", "city")
            .order_by("-id")
        )
    else:
        apps = (
            Application.objects.filter(city=city)
            .exclude(state=ApplicationState.DRAFT)
            .select_related("program", "company")
        )
    if pks is not None:
        apps = apps.filter(pk__in=pks)
    if state in ApplicationState.values:
        apps = apps.filter(state=state)
    return apps


def application_state_counts(
    *, city: City | None = None, program: Program | None = None
) -> dict[str, int]:
    """How many applications of a program (or of all a city's programs) are in each
    state, and under "" all of them: one small read of `ProgramStateCount`, which
    PostgreSQL keeps exact, instead of counting the applications."""
    return application_state_tally(city=city, program=program)[0]


def application_state_count_rows(*, city: City, states: list[str]) -> QuerySet:
    """The rows of `ProgramStateCount` for the city's programs in `states`: their `n`
    summed is how many of the city's applications are in those states (a work list's
    `Tally(…, total="n")`)."""
    return ProgramStateCount.objects.filter(program__city=city, state__in=states)


def application_state_tally(
    *, city: City | None = None, program: Program | None = None
) -> tuple[dict[str, int], int]:
    """`application_state_counts` and the sum of the programs' change counters
    (`ProgramStateCount.changes`: it moves with every change of an application's state,
    submission or decision time), in one query."""
    rows = ProgramStateCount.objects.all()
    rows = rows.filter(program=program) if program is not None else rows.filter(program__city=city)
    counts: dict[str, int] = {}
    changes = 0
    for state, n, changed in rows.values_list("state", "n", "changes"):
        counts[state] = counts.get(state, 0) + n
        if state == "":
            changes += changed
    return counts, changes


# The queue's filters that the state counts answer (any other one needs a real count).
_COUNTED_FILTERS = frozenset({"program", "state"})


def application_queue_count(*, city: City, filters: dict) -> int | None:
    """The length of the staff queue as filtered, from the state counts, when only a
    program and a state filter it (the queue's opening view); None otherwise."""
    if any(value for name, value in filters.items() if name not in _COUNTED_FILTERS | {"sort"}):
        return None
    if filters.get("program"):
        counts = application_state_counts(program=filters["program"])
    else:
        counts = application_state_counts(city=city)
    if filters.get("state"):
        return 0 if filters["state"] == ApplicationState.DRAFT else counts.get(filters["state"], 0)
    return counts.get("", 0) - counts.get(ApplicationState.DRAFT, 0)


def application_get(*, pk: int, user: User | None = None, city: City | None = None) -> Application:
    return get_object_or_404(application_list(user=user, city=city), pk=pk)


def _submitted_reviews() -> QuerySet[Review]:
    return Review.objects.filter(
        application=OuterRef("pk"), submitted_at__isnull=False, conflict=False
    )


def _review_count() -> Coalesce:
    """Reviews in (submitted, no conflict), per application: a subquery, not a join, so
    that it combines with other annotations without multiplying rows."""
    counted = _submitted_reviews().values("application").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def _scores_for(user: User, city: City) -> dict:
    """The average score and whether the user may see it (blind review): the average is
    NULL where they may not, so no page can show or sort by it."""
    visible = reviews_visible_filter(user, city)
    averaged = _submitted_reviews().values("application").annotate(a=Avg("total")).values("a")
    return {
        "scores_visible": ExpressionWrapper(visible, output_field=BooleanField()),
        "average": Case(
            When(visible, then=Subquery(averaged)),
            default=None,
            output_field=DecimalField(max_digits=12, decimal_places=6),
        ),
    }


def application_without_approver_list(*, city: City) -> QuerySet[Application]:
    """The city's applications waiting for a decision that no approver of the city may
    approve (`workflow.no_eligible_approver_filter`)."""
    return (
        application_list(city=city)
        .filter(no_eligible_approver_filter(), no_eligible_approver_candidates(city))
        # Longest waiting first (by id, PostgreSQL walked the applications in id order
        # to merge them with the few candidates).
        .order_by("submitted_at", "pk")
    )


def application_queue_list(*, city: City, user: User, filters: dict) -> QuerySet[Application]:
    """The staff queue: the city's applications with their review counts, average scores
    (only where `user` may see them: blind review) and assignments, filtered and sorted
    as the queue's form asks."""
    apps = (
        application_list(city=city)
        .annotate(review_count=_review_count(), **_scores_for(user, city))
        .prefetch_related(
            Prefetch(
                "reviews", queryset=Review.objects.select_related("reviewer"), to_attr="assignments"
            )
        )
    )
    if filters.get("q"):
        q = filters["q"].strip()
        apps = apps.filter(
            Q(company__legal_name__icontains=q)
            | Q(company__credit_code__iexact=q)
            | Q(title__icontains=q)
        )
    if filters.get("program"):
        apps = apps.filter(program=filters["program"])
    if filters.get("state"):
        apps = apps.filter(state=filters["state"])
    if filters.get("assignee"):
        apps = apps.filter(
            pk__in=Review.objects.filter(reviewer=filters["assignee"]).values("application")
        )
    if filters.get("eligibility"):
        apps = apps.filter(eligibility=filters["eligibility"])
    if filters.get("todo"):
        apps = apps.filter(
            worklists.todo_filter(filters["todo"], user=user, roles=roles_in_city(user, city))
        )
    if filters.get("assigned") == "me":
        apps = apps.filter(worklists.assigned_filter(user))
    sort = filters.get("sort") or "-submitted_at"
    if sort == "-average":  # unscored (or hidden) applications last, not first
        return apps.order_by(F("average").desc(nulls_last=True), "-id")
    return apps.order_by(sort, "-id")


def _ranking_candidates(program: Program) -> QuerySet[Application]:
    return (
        Application.objects.filter(program=program)
        .exclude(state__in=[ApplicationState.DRAFT, ApplicationState.WITHDRAWN])
        .select_related("company")
        .annotate(review_count=_review_count())
    )


def application_ranking_list(*, program: Program, user: User) -> QuerySet[Application]:
    """The program's ranking: the applications with every required review in (and whose
    reviews `user` may see: blind review), by score, best first, each with its `rank`.

    An application's score (`average`) is the mean over its reviews of each review's
    total, Σ weight × points over the rubric's criteria (`review_submit`), to two
    decimals; equal scores share a rank and the next rank skips (1, 2, 2, 4: SQL's
    RANK()). A program without reviews ranks nothing."""
    if program.reviews_required == 0:
        return Application.objects.none()
    averaged = _submitted_reviews().values("application").annotate(a=Avg("total")).values("a")
    return (
        _ranking_candidates(program)  # type: ignore[misc]
        .filter(review_count__gte=program.reviews_required)
        .filter(reviews_visible_filter(user, program.city))
        .annotate(average=Round(Subquery(averaged), 2))
        .annotate(rank=Window(Rank(), order_by=F("average").desc()))
        .order_by("rank", "submitted_at", "pk")
    )


def application_unscored_list(*, program: Program) -> QuerySet[Application]:
    """The program's applications still missing some of the required reviews, each with
    how many (`missing`), fewest missing first: listed apart from the ranking, never
    ranked as if they had scored."""
    if program.reviews_required == 0:
        return Application.objects.none()
    required = program.reviews_required
    return (
        _ranking_candidates(program)  # type: ignore[misc]
        .filter(review_count__lt=required)
        .annotate(missing=Value(required) - F("review_count"))
        .order_by("missing", "submitted_at", "pk")
    )


def application_ranking_hidden_count(*, program: Program, user: User) -> int:
    """How many scored applications the ranking leaves out for `user` (blind review)."""
    if program.reviews_required == 0:
        return 0
    return (
        _ranking_candidates(program)  # type: ignore[misc]
        .filter(review_count__gte=program.reviews_required)
        .exclude(reviews_visible_filter(user, program.city))
        .count()
    )


def application_notice_list(*, program: Program) -> QuerySet[Application]:
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


def compute_plan_row_list(*, application: Application) -> QuerySet:
    """The application's compute plan as the plan form's initial values."""
    return application.compute_plan.values(
        "accelerator", "domestic", "hours", "preferred_data_center"
    )


def document_get(*, application: Application, pk: int) -> Document:
    return get_object_or_404(application.documents, pk=pk)


# --- reviews and objections ------------------------------------------------------------------


def reviewer_list(*, city: City) -> QuerySet[User]:
    return User.objects.filter(memberships__city=city, memberships__role=Role.REVIEWER).distinct()


def review_list(*, application: Application, user: User) -> QuerySet[Review]:
    """The application's reviews the user may see: all of them, or (blind review,
    `workflow.reviews_visible_filter`) only their own."""
    reviews = application.reviews.select_related("reviewer").order_by("assigned_at", "pk")
    return reviews if reviews_visible(application, user) else reviews.filter(reviewer=user)


def objection_list(*, application: Application) -> QuerySet[Objection]:
    return application.objections.select_related("raised_by")


# --- vouchers --------------------------------------------------------------------------------


def voucher_list(
    *, user: User | None = None, city: City | None = None, query: str = "", status: str = ""
) -> QuerySet[Voucher]:
    """The vouchers of the user's companies, or (staff) the city's vouchers, optionally
    searched by code, company name or credit code, and by status."""
    if one_scope(user=user, city=city) == "user":
        if user is None or not user.is_authenticated:
            return Voucher.objects.none()
        vouchers = Voucher.objects.filter(company__members=user).select_related(
            "city", "program", "company"
        )
    else:
        vouchers = Voucher.objects.filter(city=city).select_related("program", "company")
    if query:
        vouchers = vouchers.filter(
            Q(code__icontains=query)
            | Q(company__legal_name__icontains=query)
            | Q(company__credit_code__iexact=query)
        )
    if status:
        vouchers = vouchers.filter(status=status)
    return vouchers


def voucher_get(*, code: str, user: User | None = None, city: City | None = None) -> Voucher:
    return get_object_or_404(voucher_list(user=user, city=city), code=code)


def ledger_entry_list(*, voucher: Voucher) -> QuerySet[LedgerEntry]:
    """A voucher's history, newest first."""
    return voucher.entries.order_by("-id")
