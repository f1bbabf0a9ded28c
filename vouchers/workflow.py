"""The application workflow: one transition table, read by the services (which enforce
it) and by the templates (which show only the actions it allows).

    draft → submitted → screening → in_review ⇄ info_requested → recommended |
    not_recommended | tie_break → in_notice → approved | rejected, and withdrawn before a
    decision. With an acceptance step, approval is an award (awarded) that the company
    accepts (approved, voucher issued) or declines (declined), or lets lapse (lapsed).
    An even split of the reviews (no majority) goes to tie_break, where the program
    manager adds a reviewer (whose review concludes again) or decides.

`who` names the party that may act: the applicant company's members, staff roles of the
application's city, or the system (transitions the services take on their own, such as
concluding reviews or opening the public notice).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop, ngettext

from portal.citytime import city_datetime
from portal.models import City, CityMembership, User
from portal.templatetags.money import format_yuan
from portal.tenancy import roles_in_city
from vouchers.models import (
    REVIEW_STATES,
    Application,
    CompanyMember,
    Review,
    document_type_label,
)
from vouchers.models import ApplicationState as S

MEMBER = "member"
SYSTEM = "system"
REVIEWER, APPROVER, MANAGER = "reviewer", "approver", "program_manager"
AUDITOR = "auditor"

MEMBER_STAFF_MESSAGE = gettext_noop(
    "You belong to the applicant company; another staff member must act."
)


@dataclass(frozen=True)
class Transition:
    sources: frozenset[str]
    targets: frozenset[str]
    who: frozenset[str]


def _t(sources, targets, who) -> Transition:
    return Transition(frozenset(sources), frozenset(targets), frozenset(who))


BEFORE_DECISION = {
    S.DRAFT,
    S.SUBMITTED,
    S.SCREENING,
    S.IN_REVIEW,
    S.TIE_BREAK,
    S.INFO_REQUESTED,
    S.RECOMMENDED,
    S.NOT_RECOMMENDED,
    S.IN_NOTICE,
}

# The company may still change the application (and add documents) in these states.
EDITABLE = frozenset({S.DRAFT, S.INFO_REQUESTED})

TRANSITIONS: dict[str, Transition] = {
    "submit": _t({S.DRAFT}, {S.SUBMITTED, S.NOT_RECOMMENDED}, {MEMBER}),
    "withdraw": _t(BEFORE_DECISION, {S.WITHDRAWN}, {MEMBER}),
    "start_screening": _t({S.SUBMITTED}, {S.SCREENING}, {REVIEWER, MANAGER}),
    "pass_screening": _t(
        {S.SCREENING}, {S.IN_REVIEW, S.RECOMMENDED, S.IN_NOTICE}, {REVIEWER, MANAGER}
    ),
    "fail_screening": _t({S.SCREENING}, {S.NOT_RECOMMENDED}, {REVIEWER, MANAGER}),
    "request_info": _t({S.SCREENING, S.IN_REVIEW}, {S.INFO_REQUESTED}, {REVIEWER, MANAGER}),
    "answer_info": _t({S.INFO_REQUESTED}, {S.SCREENING, S.IN_REVIEW}, {MEMBER}),
    # Most reviews recommend → recommended (or in notice); most do not → not
    # recommended; an even split → tie_break, and from there again once a reviewer the
    # program manager added has submitted.
    "conclude_reviews": _t(
        {S.IN_REVIEW, S.TIE_BREAK},
        {S.RECOMMENDED, S.NOT_RECOMMENDED, S.IN_NOTICE, S.TIE_BREAK},
        {SYSTEM},
    ),
    "break_tie": _t({S.TIE_BREAK}, {S.RECOMMENDED, S.NOT_RECOMMENDED, S.IN_NOTICE}, {MANAGER}),
    # With an acceptance step (Program.acceptance_days > 0) approval makes an award the
    # company accepts (the voucher is issued then) or declines within the window; the
    # nightly job lets an unanswered award lapse. Declined and lapsed awards go back to
    # the budget.
    "approve": _t({S.RECOMMENDED, S.IN_NOTICE}, {S.APPROVED, S.AWARDED}, {APPROVER}),
    "reject": _t({S.RECOMMENDED, S.IN_NOTICE, S.NOT_RECOMMENDED}, {S.REJECTED}, {APPROVER}),
    "accept_award": _t({S.AWARDED}, {S.APPROVED}, {MEMBER}),
    "decline_award": _t({S.AWARDED}, {S.DECLINED}, {MEMBER}),
    "lapse_award": _t({S.AWARDED}, {S.LAPSED}, {SYSTEM}),
}

# Staff actions that are not state changes but are allowed only in some states.
STAFF_ACTIONS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "assign": (
        frozenset({S.SUBMITTED, S.SCREENING, S.IN_REVIEW, S.TIE_BREAK, S.INFO_REQUESTED}),
        frozenset({MANAGER}),
    ),
    "review": (frozenset({S.IN_REVIEW, S.TIE_BREAK}), frozenset({REVIEWER})),
    "resolve_objection": (frozenset({S.IN_NOTICE}), frozenset({MANAGER, APPROVER})),
}


def parties_of(action: str) -> frozenset[str]:
    if action in TRANSITIONS:
        return TRANSITIONS[action].who
    return STAFF_ACTIONS[action][1]


def allowed(action: str, state: str, parties: set[str]) -> bool:
    if action in TRANSITIONS:
        t = TRANSITIONS[action]
        return state in t.sources and bool(t.who & parties)
    sources, who = STAFF_ACTIONS[action]
    return state in sources and bool(who & parties)


def allowed_actions(state: str, parties: set[str]) -> list[str]:
    names = [a for a, t in TRANSITIONS.items() if SYSTEM not in t.who]
    return [a for a in [*names, *STAFF_ACTIONS] if allowed(a, state, parties)]


# Reads of one application for one user, shared by the services (which enforce them) and
# the pages (which offer only what they allow).


def parties(application: Application, user: User) -> set[str]:
    """Who the user is for this application: a member of its company, staff roles."""
    found: set[str] = set(roles_in_city(user, application.city))
    if user.is_authenticated and application.company.members.filter(pk=user.pk).exists():
        found.add(MEMBER)
    return found


def application_actions(application: Application, user: User) -> list[str]:
    """What the user may do now, for the templates: the transition table's actions for
    their parties, less staff steps on their own company's application and approving
    when something stands in the way (`approval_blockers`, which the service enforces
    too). What is left out and why, the page says (`action_notes`)."""
    found = parties(application, user)
    actions = allowed_actions(application.state, found)
    if MEMBER in found:
        actions = [a for a in actions if MEMBER in parties_of(a)]
    if "approve" in actions and approval_blockers(application, user):
        actions.remove("approve")
    return actions


@dataclass(frozen=True)
class Blocker:
    """Why a step cannot be taken now: a message saying why and until when, and the
    `DomainError` code the service refuses it with."""

    message: str
    code: str


def approval_blockers(application: Application, user: User) -> list[Blocker]:
    """What stands in the way of `user` approving the application (its state and their
    role aside, which the table decides): separation of duties, the public notice and
    its objections, the program's budget. The approval service refuses with the first;
    the page shows them all."""
    found = []
    if application.reviews.filter(reviewer=user).exists():
        found.append(
            Blocker(
                _(
                    "You reviewed this application, so you may not decide it (separation "
                    "of duties): another approver must."
                ),
                "forbidden",
            )
        )
    if application.state == S.IN_NOTICE:
        ends = application.notice_ends_at
        if ends and timezone.now() < ends:
            found.append(
                Blocker(
                    _(
                        "The public notice has not ended yet: it ends at %(when)s. Approval "
                        "is possible after that, once every objection is resolved."
                    )
                    % {"when": city_datetime(ends, application.city)},
                    "conflict",
                )
            )
        n = application.objections.filter(resolved_at__isnull=True).count()
        if n:
            found.append(
                Blocker(
                    ngettext(
                        "Resolve the open objections first: %(n)s is open.",
                        "Resolve the open objections first: %(n)s are open.",
                        n,
                    )
                    % {"n": n},
                    "conflict",
                )
            )
    program = application.program
    if program.budget_remaining < program.award_min:
        found.append(
            Blocker(
                _(
                    "The program's budget has %(left)s left, less than its minimum award of "
                    "%(low)s: no award can be made until budget is returned or added."
                )
                % {
                    "left": format_yuan(program.budget_remaining),
                    "low": format_yuan(program.award_min),
                },
                "conflict",
            )
        )
    return found


def no_eligible_approver_filter() -> Q:
    """Applications waiting for a decision that no approver of their city may approve:
    every approver (active user) reviewed it or belongs to the applicant company. The
    city can give the approver role to someone else (/<city>/staff/members/)."""
    eligible = CityMembership.objects.filter(
        city=OuterRef("city"), role=APPROVER, user__is_active=True
    ).filter(
        ~Exists(
            Review.objects.filter(application=OuterRef(OuterRef("pk")), reviewer=OuterRef("user"))
        ),
        ~Exists(
            CompanyMember.objects.filter(
                company=OuterRef(OuterRef("company")), user=OuterRef("user")
            )
        ),
    )
    return Q(state__in=TRANSITIONS["approve"].sources) & ~Q(Exists(eligible))


def no_eligible_approver_candidates(city: City) -> Q:
    """Implied by `no_eligible_approver_filter` for the city's applications: an active
    approver reviewed it or belongs to its company, or the city has no active approver.
    As a filter beside the rule it lets PostgreSQL start from those few reviews and
    companies instead of checking every approver against every waiting application."""
    approvers = CityMembership.objects.filter(city=city, role=APPROVER, user__is_active=True)
    users = approvers.values("user")
    reviewed = Review.objects.filter(reviewer__in=users).values("application")
    theirs = Application.objects.filter(
        company__in=CompanyMember.objects.filter(user__in=users).values("company")
    ).values("pk")
    nobody = (
        Application.objects.filter(city=city, state__in=TRANSITIONS["approve"].sources)
        .filter(~Exists(approvers))
        .values("pk")
    )
    return Q(pk__in=reviewed.union(theirs, nobody, all=True))


def has_no_eligible_approver(application: Application) -> bool:
    return (
        Application.objects.filter(pk=application.pk).filter(no_eligible_approver_filter()).exists()
    )


def action_notes(application: Application, user: User) -> list[str]:
    """What the page says about the steps the user might expect but cannot take now, each
    with why and until when (or who can), so that no page is a silent dead end."""
    found = parties(application, user)
    roles = found - {MEMBER}
    state = application.state
    notes: list[str] = []
    if MEMBER in found and roles:
        return [_(MEMBER_STAFF_MESSAGE)]
    if MEMBER in found:
        if state == S.IN_NOTICE and application.notice_ends_at:
            notes.append(
                _(
                    "Your application is in public notice until %(when)s. The city decides "
                    "after the notice has ended and every objection is resolved."
                )
                % {"when": city_datetime(application.notice_ends_at, application.city)}
            )
        elif state == S.TIE_BREAK:
            notes.append(
                _(
                    "The reviews are evenly split. The city's program manager adds a "
                    "reviewer or decides the recommendation."
                )
            )
        elif state == S.AWARDED and application.award_expires_at:
            notes.append(
                _(
                    "Accept or decline the award by %(when)s. The voucher is issued when "
                    "you accept; an award not accepted by then lapses."
                )
                % {"when": city_datetime(application.award_expires_at, application.city)}
            )
        return notes
    if state == S.AWARDED and application.award_expires_at:
        notes.append(
            _(
                "The company has until %(when)s to accept or decline the award; the voucher "
                "is issued when it accepts."
            )
            % {"when": city_datetime(application.award_expires_at, application.city)}
        )
    if state == S.TIE_BREAK:
        notes.append(
            _(
                "The reviews are evenly split, with no majority. A program manager adds a "
                "reviewer (whose review decides) or decides the recommendation, with a "
                "reason."
            )
        )
    if MANAGER in roles and state in REVIEW_STATES:
        required = application.program.reviews_required
        able = application.reviews.exclude(conflict=True).count()
        if able < required:
            notes.append(
                _(
                    "%(required)s reviews are required but only %(able)s assigned reviewers "
                    "have no conflict of interest: assign %(more)s more for the reviews to "
                    "conclude."
                )
                % {"required": required, "able": able, "more": required - able}
            )
    if state in TRANSITIONS["approve"].sources:
        if APPROVER in roles:
            notes.extend(b.message for b in approval_blockers(application, user))
        if has_no_eligible_approver(application):
            notes.append(
                _(
                    "No approver of %(city)s may approve this application: every approver "
                    "reviewed it or belongs to the applicant company. A program manager can "
                    "give the approver role to another staff member on the Staff page."
                )
                % {"city": application.city.name}
            )
    if REVIEWER in roles:
        own = application.reviews.filter(reviewer=user).first()
        if own is not None and own.submitted_at is None and not own.conflict:
            if state == S.INFO_REQUESTED:
                notes.append(
                    _(
                        "Your review waits: the city asked the company for information, and "
                        "reviews resume once it has answered."
                    )
                )
            elif state not in REVIEW_STATES:
                notes.append(
                    _(
                        "Your review is no longer needed: the required reviews were in "
                        "before yours, and the application is now %(state)s."
                    )
                    % {"state": application.get_state_display()}
                )
    return notes


def application_problems(application: Application) -> dict[str, list[str]]:
    """What must be filled in before the application can be submitted."""
    program = application.program
    errors: dict[str, list[str]] = {}
    for field, message in (
        ("title", _("Give the project a title.")),
        ("summary", _("Summarise the project.")),
        ("model_plans", _("Describe the models you plan to train or serve.")),
    ):
        if not getattr(application, field).strip():
            errors[field] = [message]
    amount = application.requested_amount
    if amount is None:
        errors["requested_amount"] = [_("Give the amount you request.")]
    elif not program.award_min <= amount <= program.award_max:
        errors["requested_amount"] = [
            _("The program awards between ¥%(low)s and ¥%(high)s.")
            % {"low": f"{program.award_min:,.2f}", "high": f"{program.award_max:,.2f}"}
        ]
    if not application.compute_plan.exists():
        errors["compute_plan"] = [_("Add at least one row to the compute plan.")]
    if not (
        application.declares_no_related_party
        and application.declares_no_other_subsidy
        and application.declares_true_information
    ):
        errors["declarations"] = [_("All three declarations are required.")]
    present = set(application.documents.values_list("doc_type", flat=True))
    missing = [t for t in program.required_documents or [] if t not in present]
    if missing:
        names = ", ".join(document_type_label(t) for t in missing)
        errors["documents"] = [_("Missing documents: %(types)s.") % {"types": names}]
    return errors


# --- blind review ---------------------------------------------------------------------------
#
# The one rule for who sees the reviews of an application (the others' scores, totals,
# recommendations, comments, the average and the tally): every page, list and export
# that shows any of them filters through `reviews_visible_filter`, in SQL, so a list
# cannot even be sorted by what the reader may not see.

# Roles that see every review once they are not reviewing the application themselves:
# those who decide (approver), run the program (program manager) or audit it (auditor).
SEE_ALL_REVIEWS = frozenset({APPROVER, MANAGER, AUDITOR})


def reviews_visible_filter(user: User, city: City) -> Q:
    """The applications of `city` whose reviews `user` may see, as a filter on
    applications:

    - nobody sees the reviews of an application of a company they belong to;
    - an assigned reviewer sees no other review until they have submitted their own
      (a declared conflict ends their part: they never see them), whatever other roles
      they hold;
    - program managers, approvers and auditors see all the others;
    - a reviewer sees them after submitting their own, unless the program keeps reviews
      blind (`Program.reviews_blind`); a reviewer not on the application sees nothing.
    """
    roles = roles_in_city(user, city)
    if not roles:
        return Q(pk__in=[])
    mine = Review.objects.filter(application=OuterRef("pk"), reviewer=user)
    own = Exists(mine)
    submitted = Exists(mine.filter(submitted_at__isnull=False, conflict=False))
    member = Exists(CompanyMember.objects.filter(company=OuterRef("company"), user=user))
    if roles & SEE_ALL_REVIEWS:
        visible = ~Q(own) | Q(submitted)
    elif REVIEWER in roles:
        visible = Q(submitted) & Q(program__reviews_blind=False)
    else:
        return Q(pk__in=[])
    return visible & ~Q(member)


def reviews_visible(application: Application, user: User) -> bool:
    """`reviews_visible_filter` for one application (one query)."""
    return (
        Application.objects.filter(pk=application.pk)
        .filter(reviews_visible_filter(user, application.city))
        .exists()
    )


def reviews_hidden_reason(application: Application, user: User) -> str | None:
    """Why the user sees only their own review of the application, or None if they see
    them all: said on the page so that an empty table is not mistaken for no reviews."""
    if reviews_visible(application, user):
        return None
    own = application.reviews.filter(reviewer=user).first()
    if application.company.members.filter(pk=user.pk).exists():
        return _("You belong to the applicant company, so its reviews are not shown to you.")
    if own is not None and own.conflict:
        return _("You declared a conflict of interest, so the other reviews are not shown.")
    if own is not None and own.submitted_at is None:
        return _("Blind review: the other reviews are shown once you have submitted your own.")
    if own is not None and application.program.reviews_blind:
        return _("This program keeps reviews blind to reviewers: only your own is shown.")
    return _("Reviews are shown to the reviewers of the application once they have submitted.")
