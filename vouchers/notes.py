"""Notes the system writes on an application's timeline (and as its decision reason),
shown in the reader's language.

A state change keeps its note as written: a record, and usually a person's own words (a
question, a reason). Two notes are the system's: the reviews' tally ("2 of 3 reviews
recommend.") and, when hard eligibility failures reject a submission, the failed rules'
messages. They were written in the language of whoever's request concluded the reviews,
so an English page could read "2 份评审中有 2 份推荐。" (issue #14 item 2). The tally is
now written from its code and numbers in English (`tally_note`), and both are rendered
at display time (`note_text`): a tally in either language is recognised and re-rendered
through gettext; a note that is exactly the failed rules' English messages is shown as
their messages in the reader's language (the outcomes keep both). The tally's noun and
verb agree with its number of reviews (`ngettext`: "1 of 1 review recommends."); a note
stored before with the plural for one review ("1 of 1 reviews recommend.") is recognised
and shown so too.
"""

from __future__ import annotations

import re

from django.utils.translation import ngettext

from vouchers.models import Application, EligibilityResult

# The tally's two English forms (for ngettext: one review, several).
TALLY_ONE = "%(yes)s of %(n)s review recommends."
TALLY_MANY = "%(yes)s of %(n)s reviews recommend."
_TALLY_EN = re.compile(r"(?P<yes>\d+) of (?P<n>\d+) (reviews recommend|review recommends)\.")
_TALLY_ZH = re.compile(r"(?P<n>\d+) 份评审中有 (?P<yes>\d+) 份推荐。")
_FAIL = EligibilityResult.FAIL


def tally_note(yes: int, n: int) -> str:
    """The tally as stored: English, whatever the language of the request."""
    return (TALLY_ONE if n == 1 else TALLY_MANY) % {"yes": yes, "n": n}


def tally_text(yes: int, n: int) -> str:
    """The tally in the reader's language (the timeline, the decision e-mail)."""
    return ngettext(TALLY_ONE, TALLY_MANY, n) % {"yes": yes, "n": n}


def failed_rules_note(outcomes) -> str:
    """The failed rules' messages as stored with the step (English)."""
    return "; ".join(o.message_en for o in outcomes if o.outcome == _FAIL)


def note_text(note: str, application: Application | None = None) -> str:
    """A timeline note (or decision reason) as the reader reads it."""
    if not note:
        return ""
    if m := (_TALLY_EN.fullmatch(note) or _TALLY_ZH.fullmatch(note)):
        return tally_text(int(m["yes"]), int(m["n"]))
    failed = _failed_outcomes(application)
    if failed and note in (failed_rules_note(failed), "; ".join(o.message_zh for o in failed)):
        return "; ".join(o.message for o in failed)
    return note


def _failed_outcomes(application: Application | None) -> list:
    """The application's failed rules, read once per application object (a timeline
    renders several notes)."""
    if application is None or not application.pk:
        return []
    cached = getattr(application, "_failed_outcomes", None)
    if cached is None:
        cached = [o for o in application.eligibility_outcomes.all() if o.outcome == _FAIL]
        application._failed_outcomes = cached  # type: ignore[attr-defined]
    return cached
