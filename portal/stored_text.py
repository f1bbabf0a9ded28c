"""Texts the portal stored in English, shown in the reader's language.

Ledger entries, audit events and timeline changes keep a short actor label ("system",
"data center #5", "data center gz-1") and ledger entries a memo ("application 43"),
written by code in English at the time. They are records and stay as written; these
functions recognise the few shapes the code writes and render them through gettext when
the page is drawn, so a Chinese page does not show "system" (issue #14 item 2). Anything
else — an e-mail, a reason a person typed — is shown as stored.
"""

from __future__ import annotations

import re

from django.utils.translation import gettext

_SYSTEM = "system"
_DC_ID = re.compile(r"data center #(?P<id>\d+)")
_DC_SLUG = re.compile(r"data center (?P<slug>[\w-]+)")
_PERSON_FOR_DC = re.compile(r"(?P<email>\S+@\S+) \(data center (?P<slug>[\w-]+)\)")
_APPLICATION = re.compile(r"application (?P<id>\d+)")
_VOID = re.compile(r"void (?P<record>[^:]+): (?P<reason>.*)", re.DOTALL)
_EXPIRED = "validity and grace days ended"
# Reasons the feed sync gives a redemption the data center changed without saying why.
_FEED_REJECTED = "rejected in the feed"
_FEED_CLOSED = "closed in feed"


def actor_text(label: str) -> str:
    """An actor label as the reader reads it."""
    if label == _SYSTEM:
        return gettext("system")
    if m := _DC_ID.fullmatch(label):
        return gettext("data center #%(id)s") % {"id": m["id"]}
    if m := _DC_SLUG.fullmatch(label):
        return gettext("data center %(slug)s") % {"slug": m["slug"]}
    if m := _PERSON_FOR_DC.fullmatch(label):
        return gettext("%(email)s (data center %(slug)s)") % {
            "email": m["email"],
            "slug": m["slug"],
        }
    return label


def memo_text(memo: str) -> str:
    """A ledger memo (or a redemption's reason) as the reader reads it; a person's own
    words stay as typed."""
    if m := _APPLICATION.fullmatch(memo):
        return gettext("application %(id)s") % {"id": m["id"]}
    if memo == _EXPIRED:
        return gettext("validity and grace days ended")
    if memo == _FEED_REJECTED:
        return gettext("rejected in the feed")
    if memo == _FEED_CLOSED:
        return gettext("closed in the data center's feed")
    if m := _VOID.fullmatch(memo):
        return gettext("void %(record)s: %(reason)s") % {
            "record": m["record"],
            "reason": m["reason"],
        }
    return memo
