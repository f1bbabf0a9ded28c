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

from vouchers.models import ApplicationState as S

MEMBER = "member"
SYSTEM = "system"
REVIEWER, APPROVER, MANAGER = "reviewer", "approver", "program_manager"


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
