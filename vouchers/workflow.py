"""The application workflow: one transition table, read by the services (which enforce
it) and by the templates (which show only the actions it allows).

    draft → submitted → screening → in_review ⇄ info_requested → recommended |
    not_recommended → in_notice → approved | rejected, and withdrawn before a decision.

`who` names the party that may act: the applicant company's members, staff roles of the
application's city, or the system (transitions the services take on their own, such as
concluding reviews or opening the public notice).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from portal.models import City, User
from portal.tenancy import roles_in_city
from vouchers.models import Application, CompanyMember, Review, document_type_label
from vouchers.models import ApplicationState as S

MEMBER = "member"
SYSTEM = "system"
REVIEWER, APPROVER, MANAGER = "reviewer", "approver", "program_manager"
AUDITOR = "auditor"


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
    "conclude_reviews": _t(
        {S.IN_REVIEW}, {S.RECOMMENDED, S.NOT_RECOMMENDED, S.IN_NOTICE}, {SYSTEM}
    ),
    "approve": _t({S.RECOMMENDED, S.IN_NOTICE}, {S.APPROVED}, {APPROVER}),
    "reject": _t({S.RECOMMENDED, S.IN_NOTICE, S.NOT_RECOMMENDED}, {S.REJECTED}, {APPROVER}),
}

# Staff actions that are not state changes but are allowed only in some states.
STAFF_ACTIONS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "assign": (
        frozenset({S.SUBMITTED, S.SCREENING, S.IN_REVIEW, S.INFO_REQUESTED}),
        frozenset({MANAGER}),
    ),
    "review": (frozenset({S.IN_REVIEW}), frozenset({REVIEWER})),
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
    an application they reviewed (separation of duties, which the services enforce)."""
    found = parties(application, user)
    actions = allowed_actions(application.state, found)
    if MEMBER in found:
        actions = [a for a in actions if MEMBER in parties_of(a)]
    if "approve" in actions and (
        application.reviews.filter(reviewer=user).exists() or notice_blocks(application)
    ):
        actions.remove("approve")
    return actions


def notice_blocks(application: Application) -> str | None:
    """Why the public notice still stands in the way of approval, or None."""
    if application.state != S.IN_NOTICE:
        return None
    if application.notice_ends_at and timezone.now() < application.notice_ends_at:
        return _("The public notice has not ended yet.")
    if application.objections.filter(resolved_at__isnull=True).exists():
        return _("Resolve the open objections first.")
    return None


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
