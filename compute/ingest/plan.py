"""Planning a batch, before any lock: what each first occurrence of a record_id comes
to as things stand, read in a few statements (the vouchers named, their terms, their
active redemptions here, and the records this data center sent before)."""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import NamedTuple
from zoneinfo import ZoneInfo

from django.db import connection
from django.utils.translation import gettext as _

from compute.ingest.check import Staged
from compute.models import RegistrationStatus
from portal.db import sql_list
from vouchers.ledger import ChargeTerms
from vouchers.models import VoucherStatus


class Outcome(StrEnum):
    """What a record comes to (docs/api.md): accepted, a duplicate of one sent before,
    or rejected with one of the codes after `DUPLICATE`."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    INVALID = "invalid"
    CONFLICT = "conflict"
    UNKNOWN_VOUCHER = "unknown_voucher"
    NOT_AUTHORIZED = "not_authorized"
    VOUCHER_INACTIVE = "voucher_inactive"
    OUTSIDE_VALIDITY = "outside_validity"


def rejection_messages() -> dict[str, str]:
    """The message of each rejection code decided by planning (in the reader's language)."""
    return {
        Outcome.CONFLICT: _("This record_id was sent before with different content."),
        Outcome.UNKNOWN_VOUCHER: _("No such voucher."),
        Outcome.NOT_AUTHORIZED: _("This voucher has no active redemption at your data center."),
        Outcome.VOUCHER_INACTIVE: _("The voucher is suspended or revoked."),
        Outcome.OUTSIDE_VALIDITY: _(
            "The usage ends outside the voucher's validity (plus grace days)."
        ),
    }


class Plan(NamedTuple):
    """A first occurrence's outcome: `covered` is the amount an accepted record covers
    (its full share when planned; what is left when settled under the locks) or what a
    duplicate covered the first time; the voucher and redemption of an accepted one."""

    outcome: Outcome
    covered: Decimal | None = None
    voucher_id: int = 0
    redemption_id: int = 0


_record_of = operator.itemgetter(1)  # an Occurrence's record
# A Plan built from a ready tuple in C (the generated `__new__` is Python): one per
# accepted record.
_plan = functools.partial(tuple.__new__, Plan)


class StoredRecord(NamedTuple):
    """A record_id this data center sent before: its content as `RecordFields.content`
    gives it, and the amount it covered."""

    content: tuple[object, ...]
    covered: Decimal | None  # None: its record was archived


class ActiveRedemption(NamedTuple):
    id: int
    cap_left: Decimal | None  # None: no cap
    voucher_status: str


class Validity(NamedTuple):
    """When a voucher's usage may end, as instants and as the local text of each end
    with its UTC offset: a record ending at the same offset is compared as text
    (comparing datetimes of two offsets costs a microsecond, for every record)."""

    opens: datetime
    closes: datetime
    opens_local: str
    opens_offset: str
    closes_local: str
    closes_offset: str


class Chargeable(NamedTuple):
    """A voucher this batch may charge here, with what decides each record's share."""

    voucher_id: int
    redemption_id: int
    rate_domestic: Decimal
    rate_other: Decimal
    validity: Validity


INACTIVE = (VoucherStatus.SUSPENDED.value, VoucherStatus.REVOKED.value)
_CENT = Decimal("0.01")


@functools.lru_cache(maxsize=4096)
def validity(valid_from: date, grace_until: date, tz: str) -> Validity:
    """From valid_from, 00:00 in the city's time zone, to the day after grace_until,
    00:00 there (a local midnight that does not exist takes the offset before it).
    Cached: the vouchers of one issue share their dates."""
    opens = datetime.combine(valid_from, time(), ZoneInfo(tz))
    closes = datetime.combine(grace_until + timedelta(days=1), time(), ZoneInfo(tz))
    o, c = opens.isoformat(), closes.isoformat()
    return Validity(opens, closes, o[:-6], o[-6:], c[:-6], c[-6:])


def registered_vouchers(data_center_id: int, codes: set[str]) -> dict[str, int]:
    """Voucher ids by code, for vouchers of cities this data center is registered for
    (the others are `unknown_voucher` to it)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT v.code, v.id FROM vouchers_voucher v "
            "JOIN compute_registration g ON g.city_id = v.city_id "
            "WHERE g.data_center_id = %s AND g.status = %s"
            " AND v.code = ANY(string_to_array(%s, E'\\n'))",
            [data_center_id, RegistrationStatus.ACTIVE, sql_list(codes)],
        )
        return dict(cursor.fetchall())


_ACTIVE_REDEMPTIONS = (
    "SELECT r.voucher_id, r.id, r.amount_cap - r.covered_total, v.status"
    " FROM compute_redemption r JOIN vouchers_voucher v ON v.id = r.voucher_id"
    " WHERE r.data_center_id = %s AND r.status = 'active'"
    " AND r.voucher_id = ANY(string_to_array(%s, E'\\n')::bigint[])"
)


def active_redemptions(
    data_center_id: int, voucher_ids: Iterable[int], *, lock: bool = False
) -> dict[int, ActiveRedemption]:
    """The active redemptions of these vouchers at this data center, by voucher id; with
    `lock`, locked in id order (the caller holds the vouchers' locks already)."""
    sql = _ACTIVE_REDEMPTIONS + (" ORDER BY r.id FOR UPDATE OF r" if lock else "")
    with connection.cursor() as cursor:
        cursor.execute(sql, [data_center_id, sql_list(voucher_ids)])
        return {row[0]: ActiveRedemption(*row[1:]) for row in cursor.fetchall()}


def stored_records(data_center_id: int, record_ids: list[str]) -> dict[str, StoredRecord]:
    """The records among `record_ids` this data center sent before. One statement (an
    index probe per id); usually it finds none."""
    with connection.cursor() as cursor:
        # One probe of the key table's primary key per id, whatever the planner
        # estimates (with the ids inlined, it may otherwise read all of this data
        # center's keys), then one of the record's partition by its (id, ended_at). A
        # key whose record was archived (its month detached) finds none: its content
        # cannot be compared, so it is a conflict, never a second charge.
        cursor.execute(
            "SELECT x.record_id, u.* FROM unnest(string_to_array(%s, E'\\n')) AS x(record_id)"
            " CROSS JOIN LATERAL ("
            "  SELECT v.code, u.started_at, u.ended_at, u.resource, u.domestic, u.quantity,"
            "         u.amount, u.covered_amount"
            "  FROM compute_usagerecordkey k"
            "  LEFT JOIN compute_usagerecord u"
            "    ON u.id = k.usage_record_id AND u.ended_at = k.ended_at"
            "  LEFT JOIN vouchers_voucher v ON v.id = u.voucher_id"
            "  WHERE k.data_center_id = %s AND k.record_id = x.record_id LIMIT 1"
            " ) AS u",
            [sql_list(record_ids), data_center_id],
        )
        return {row[0]: StoredRecord(row[1:8], row[8]) for row in cursor.fetchall()}


def plan(
    staged: Staged,
    stored: dict[str, StoredRecord],
    voucher_ids: dict[str, int],
    terms: dict[int, ChargeTerms],
    redemptions: dict[int, ActiveRedemption],
) -> list[Plan]:
    """Each first occurrence's outcome as things stand; the accepted ones with their
    full share as covered amount (their records are then written before the locks, and
    `apply.settle` decides them for good under the locks).

    The terms are fixed at issue but for the program's rates and grace days, which a
    manager may change at any time: a change that commits while a batch is being
    applied counts from the next batch. A redemption accepted or a voucher resumed
    meanwhile, likewise; one closed, suspended or revoked meanwhile is seen under the
    locks."""
    # What the voucher alone decides, once per voucher code: a rejection, or its terms.
    by_code: dict[str, Outcome | Chargeable] = {}
    for code, voucher_id in voucher_ids.items():
        voucher_terms = terms.get(voucher_id)
        redemption = redemptions.get(voucher_id)
        if voucher_terms is None:
            continue
        if redemption is None:
            by_code[code] = Outcome.NOT_AUTHORIZED
        elif redemption.voucher_status in INACTIVE:
            by_code[code] = Outcome.VOUCHER_INACTIVE
        else:
            by_code[code] = Chargeable(
                voucher_id,
                redemption.id,
                voucher_terms.rate_domestic,
                voucher_terms.rate_other,
                validity(
                    voucher_terms.valid_from, voucher_terms.grace_until, voucher_terms.timezone
                ),
            )
    plans: list[Plan] = []
    append = plans.append
    sent_before = stored.get if stored else None
    accepted, unknown = Outcome.ACCEPTED, Outcome.UNKNOWN_VOUCHER  # hoisted: per record
    for record in map(_record_of, staged.first_occurrences):
        if sent_before is not None:
            before = sent_before(record.record_id)
            if before is not None:
                if before.content == record.content():
                    append(Plan(Outcome.DUPLICATE, before.covered))
                else:
                    append(Plan(Outcome.CONFLICT))
                continue
        _record_id, code, _started_at, ended_at, _resource, domestic, _qty, amount, ended = record
        known = by_code.get(code, unknown)
        if isinstance(known, Outcome):
            append(Plan(known))
            continue
        voucher_id, redemption_id, rate_domestic, rate_other, window = known
        # Inside the validity: as text where the offsets agree, as instants where not
        # (inline, as everything in this loop: it runs for every record).
        opens, closes, opens_local, opens_offset, closes_local, closes_offset = window
        local, offset = ended_at[:-6], ended_at[-6:]
        if (local < opens_local if offset == opens_offset else ended < opens) or (
            local > closes_local if offset == closes_offset else ended > closes
        ):
            append(Plan(Outcome.OUTSIDE_VALIDITY))
            continue
        rate = rate_domestic if domestic else rate_other
        share = (Decimal(amount) * rate).quantize(_CENT, ROUND_HALF_UP)
        append(_plan((accepted, share, voucher_id, redemption_id)))
    return plans
