"""Usage ingestion: receiving batches and applying them to vouchers, in bulk.

The hot path (tests/bench measures it). Receiving checks only the envelope and stores
the body exactly as it came; a Celery task then applies the batch in one transaction:
1. Before any lock, so that workers do it in parallel: every record is checked in plain
   Python (`record_parse`) and a record_id repeated within the batch is settled against
   its first occurrence; the vouchers named, their terms and their active redemptions
   here are read; each first occurrence is planned (`_plan`) and the ones to be charged
   are written by one COPY, with their full share as covered amount. A record_id this
   data center sent before makes that COPY fail on the unique index (after waiting for
   a batch writing the same one to commit): the records sent before are then looked up
   and compared field by field, and the batch planned again.
2. The plan's results are written to the batch (they usually stand). Then, under the
   locks: the vouchers (`vouchers.ledger.vouchers_lock`, in id order); if each is still
   active with enough balance, one UPDATE adds the planned totals to the redemptions
   where each is still the active one with enough cap left, and the charge entries and
   balances go in by `vouchers.ledger.ledger_charge_many` (one COPY, one UPDATE). If
   anything changed meanwhile, the redemptions are locked too and `_settle` decides
   every record again, `covered = min(share, balance left, cap left)` in the order
   sent, rejecting the records of a voucher suspended or revoked, or of a redemption
   closed; the few written records that changed are updated or deleted, and the
   results written again. No record costs a round trip.
The batch row is locked first, so two workers never apply one batch at once, and its
status is committed with the charges, so a batch applied twice (a redelivered task, the
sweeper) finds itself `done` and changes nothing.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import orjson
from django.db import connection, transaction
from django.utils.translation import gettext as _
from psycopg.errors import UniqueViolation

from compute.batches import usage_batch_enqueue
from compute.models import (
    BatchSource,
    BatchStatus,
    DataCenter,
    RegistrationStatus,
    UsageBatch,
)
from portal.db import copy_text, execute_bound, new_ids, sql_list, text_storable
from portal.errors import DomainError
from portal.locks import USAGE_IDEMPOTENCY_KEY
from vouchers.ledger import (
    ChargeTerms,
    ledger_charge_many,
    voucher_charge_terms,
    vouchers_lock,
)
from vouchers.models import VoucherStatus

MAX_RECORDS = 5000
MAX_BODY_BYTES = 10 * 1024 * 1024  # docs/api.md's "10 MB", as 10 MiB
# How far past the batch's arrival a record may end (clocks differ a little).
FUTURE_TOLERANCE = timedelta(minutes=5)
# ASCII only: `\d` would also match other scripts' digits, which PostgreSQL refuses.
_RECORD_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}\Z")
_MONEY = re.compile(r"[0-9]{1,12}(\.[0-9]{1,2})?\Z")
_QUANTITY = re.compile(r"[0-9]{1,11}(\.[0-9]{1,3})?\Z")
# The RFC 3339 form PostgreSQL reads as it is (offsets up to ±15:59, microseconds):
# a timestamp written so is staged as sent; any other is converted to UTC first.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    r"(Z|[+-](0[0-9]|1[0-5]):[0-5][0-9])\Z"
)
_RECORD_FIELDS = frozenset(
    (
        "record_id",
        "voucher",
        "started_at",
        "ended_at",
        "resource",
        "domestic",
        "quantity",
        "amount",
    )
)


# --- the body -------------------------------------------------------------------------------


class _Inexact(Exception):
    """A JSON number was read as a float: read the body again with exact decimals."""


class NonFinite(str):
    """`NaN`, `Infinity` or `-Infinity` in a body: Python's `json` reads them (orjson
    does not), but no record may carry them. Kept as this string, so the record holding
    one is rejected as `invalid` like any other bad number and the stored body stays
    valid JSON; a float NaN would instead fail the whole batch on every retry."""


def _loads_exact(data: bytes | str) -> Any:
    return json.loads(data, parse_float=Decimal, parse_constant=NonFinite)


@dataclass(frozen=True, slots=True)
class BatchBody:
    """A batch's request body: the text stored, its digest and its parsed envelope."""

    text: str
    digest: str
    data: Any

    @classmethod
    def parse(cls, raw: bytes) -> BatchBody:
        """Parse a request body; `ValueError` if it is not JSON.

        orjson reads the common case several times faster than `json`; what it refuses
        although `json` reads it (unpaired surrogates, numbers beyond a double, a BOM,
        UTF-16) is parsed again by `json` and stored re-encoded as ASCII JSON, so the
        records it holds get their per-record rejections like any other."""
        digest = hashlib.sha256(raw).hexdigest()
        try:
            return cls(raw.decode(), digest, orjson.loads(raw))
        except (orjson.JSONDecodeError, UnicodeDecodeError):
            pass
        try:
            data = _loads_exact(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as error:
            raise ValueError("not JSON") from error
        return cls(json.dumps(data, default=str), digest, data)

    @classmethod
    def of_records(cls, records: list[Any]) -> BatchBody:
        """The body of records the portal got some other way (a data center's feed)."""
        text = json.dumps({"records": records}, separators=(",", ":"), default=str)
        return cls(text, hashlib.sha256(text.encode()).hexdigest(), {"records": records})


def body_records(text: str, *, exact: bool = False) -> list[Any]:
    """The records of a stored body. Numbers with a fraction come back as floats unless
    `exact` (slower): callers that need their digits ask again on `_Inexact`."""
    if not exact:
        try:
            return orjson.loads(text)["records"]
        except orjson.JSONDecodeError:
            pass
    return _loads_exact(text)["records"]


# --- validation ---------------------------------------------------------------------------


class RecordFields(NamedTuple):
    """A valid record, its values as PostgreSQL reads them (COPY text). A tuple: one is
    built per record of every batch, and a frozen dataclass costs twice as much."""

    record_id: str
    voucher: str
    started_at: str
    ended_at: str
    resource: str
    domestic: bool
    quantity: str
    amount: str
    ended: datetime  # ended_at, parsed: the validity rules compare it

    def content(self) -> tuple:
        """What "the same content" compares: same instants, same numbers (`12` is
        `12.000`), the rest as sent."""
        return (
            self.voucher,
            datetime.fromisoformat(self.started_at),
            self.ended,
            self.resource,
            self.domestic,
            Decimal(self.quantity),
            Decimal(self.amount),
        )


def _timestamp(value: Any, errors: dict[str, list[str]], field: str) -> datetime | None:
    if not isinstance(value, str):
        errors[field] = [_("An RFC 3339 timestamp with an offset is required.")]
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        errors[field] = [_("An RFC 3339 timestamp with an offset is required.")]
        return None
    if parsed.tzinfo is None:
        errors[field] = [_("The timestamp needs a UTC offset, e.g. +08:00.")]
        return None
    # Staged in UTC: PostgreSQL refuses offsets beyond ±15:59 that RFC 3339 allows.
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+08:00 is before year 1 in UTC
        errors[field] = [_("An RFC 3339 timestamp with an offset is required.")]
        return None


def _number(value: Any, pattern: re.Pattern) -> str | None:
    """The decimal text of a JSON string or number, if `pattern` allows it."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        return None
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, Decimal):
        text = format(value, "f")
    elif isinstance(value, float):
        raise _Inexact
    else:
        return None
    return text if pattern.match(text) else None


def record_parse(raw: Any) -> tuple[RecordFields | None, dict[str, list[str]]]:
    """Validate one raw record (a JSON object). Plain Python rather than a DRF
    serializer: this runs for every record of every batch (tests/bench measures it).
    Raises `_Inexact` for a number parsed as a float.

    The common case (eight fields, strings where strings may be, RFC 3339 timestamps)
    is decided by one chain of checks; anything else, valid or not, by the field by
    field checks of `_record_parse_fields`, which also say what is wrong."""
    if type(raw) is dict and len(raw) == 8:
        try:
            record_id, voucher = raw["record_id"], raw["voucher"]
            started, ended = raw["started_at"], raw["ended_at"]
            resource, domestic = raw["resource"], raw["domestic"]
            quantity, amount = raw["quantity"], raw["amount"]
        except KeyError:
            return _record_parse_fields(raw)
        if (
            type(record_id) is str
            and _RECORD_ID.match(record_id)
            and type(voucher) is str
            and 0 < len(voucher) <= 24
            and voucher.isprintable()
            and type(started) is str
            and _RFC3339.match(started)
            and type(ended) is str
            and _RFC3339.match(ended)
            and type(resource) is str
            and len(resource) <= 64
            and resource.isprintable()
            and resource
            and not resource.isspace()
            and type(domestic) is bool
            and type(quantity) is str
            and _QUANTITY.match(quantity)
            and quantity.strip("0.")
            and type(amount) is str
            and _MONEY.match(amount)
        ):
            try:
                start, end = datetime.fromisoformat(started), datetime.fromisoformat(ended)
            except ValueError:
                return _record_parse_fields(raw)
            # Year 1 and 9999 may leave the calendar in UTC: checked field by field.
            if start < end and 1 < start.year < 9999 and 1 < end.year < 9999:
                return RecordFields(
                    record_id, voucher, started, ended, resource, domestic, quantity, amount, end
                ), {}
    return _record_parse_fields(raw)


def _record_parse_fields(raw: Any) -> tuple[RecordFields | None, dict[str, list[str]]]:
    if not isinstance(raw, dict):
        return None, {"record": [_("Each record must be a JSON object.")]}
    errors: dict[str, list[str]] = {}
    record_id = raw.get("record_id")
    if not isinstance(record_id, str) or not _RECORD_ID.match(record_id):
        errors["record_id"] = [_("Up to 64 characters of A-Z, a-z, 0-9, '.', '_', ':', '-'.")]
    voucher = raw.get("voucher")
    if not isinstance(voucher, str) or not 0 < len(voucher) <= 24 or not voucher.isprintable():
        errors["voucher"] = [_("A voucher code is required.")]
    started = _timestamp(raw.get("started_at"), errors, "started_at")
    ended = _timestamp(raw.get("ended_at"), errors, "ended_at")
    if started and ended and ended <= started:
        errors["ended_at"] = [_("Must be after started_at.")]
    resource = raw.get("resource")
    if (
        not isinstance(resource, str)
        or len(resource) > 64
        or not resource.strip()
        or not resource.isprintable()
    ):
        errors["resource"] = [_("The accelerator model is required (at most 64 characters).")]
    domestic = raw.get("domestic")
    if not isinstance(domestic, bool):
        errors["domestic"] = [_("Must be true or false.")]
    quantity = _number(raw.get("quantity"), _QUANTITY)
    if quantity is None or not quantity.strip("0."):
        errors["quantity"] = [_("A positive number of accelerator-hours, at most 3 decimals.")]
    amount = _number(raw.get("amount"), _MONEY)
    if amount is None:
        errors["amount"] = [_("A non-negative amount in yuan with at most 2 decimals.")]
    if not raw.keys() <= _RECORD_FIELDS:
        unknown = sorted(set(raw) - _RECORD_FIELDS)
        errors["record"] = [_("Unknown fields: %(fields)s.") % {"fields": ", ".join(unknown)}]
    if errors:
        return None, errors
    return (
        RecordFields(
            record_id,
            voucher,
            started.isoformat(),
            ended.isoformat(),
            resource,
            domestic,
            quantity,
            amount,
            ended,
        ),
        {},
    )


# --- receiving ----------------------------------------------------------------------------


def usage_batch_receive(
    *,
    data_center: DataCenter,
    body: BatchBody,
    idempotency_key: str = "",
    source: str = BatchSource.PUSH,
) -> tuple[UsageBatch, bool]:
    """Store a batch durably and enqueue its application. Returns (batch, created).

    Only the envelope is checked here; records are checked by the worker, one rejection
    per bad record. With an idempotency key, the same key and body (byte for byte)
    return the first batch; the same key with another body is a conflict.
    """
    records = body.data.get("records") if isinstance(body.data, dict) else None
    if not isinstance(records, list) or not records:
        raise DomainError(
            _("The body must be an object with a non-empty 'records' list."),
            code="invalid",
            fields={"records": [_("A non-empty list is required.")]},
        )
    if len(records) > MAX_RECORDS:
        raise DomainError(
            _("At most %(n)s records per batch.") % {"n": MAX_RECORDS},
            code="invalid",
            fields={"records": [_("At most %(n)s records per batch.") % {"n": MAX_RECORDS}]},
        )
    idempotency_key = (idempotency_key or "").strip()
    if len(idempotency_key) > 200:
        raise DomainError(_("The Idempotency-Key header is longer than 200 characters."))
    with transaction.atomic():
        if idempotency_key:
            # Serialise requests with the same key so the second sees the first.
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                    [USAGE_IDEMPOTENCY_KEY, f"{data_center.pk}:{idempotency_key}"],
                )
            earlier = (
                UsageBatch.objects.filter(data_center=data_center, idempotency_key=idempotency_key)
                .defer("body", "results_json")
                .first()
            )
            if earlier is not None:
                if earlier.body_hash != body.digest:
                    raise DomainError(
                        _("This Idempotency-Key was used with a different body."),
                        code="conflict",
                    )
                return earlier, False
        batch = UsageBatch.objects.create(
            data_center=data_center,
            source=source,
            idempotency_key=idempotency_key,
            body_hash=body.digest,
            received=len(records),
            body="",
        )
        # The body (up to 10 MB) bound by the server, not quoted into the SQL text.
        execute_bound(
            "UPDATE compute_usagebatch SET body = %s WHERE id = %s", [body.text, batch.pk]
        )
        batch.body = body.text
        transaction.on_commit(lambda: usage_batch_enqueue(batch.pk))
    return batch, True


# --- applying -----------------------------------------------------------------------------


def usage_batch_apply(*, batch_id: int) -> UsageBatch:
    """Apply a stored batch (see the module docstring). Safe to call any number of times."""
    with transaction.atomic():
        # Results are read only when asked for (deferred): 600 kB for a full batch.
        batch = UsageBatch.objects.select_for_update().defer("results_json").get(pk=batch_id)
        if batch.status in (BatchStatus.DONE, BatchStatus.FAILED):
            return batch
        _apply(batch)
        batch.refresh_from_db(fields=["status", "accepted", "duplicate", "rejected", "finished_at"])
    return batch


class _Stored(NamedTuple):
    """A record_id this data center sent before: its content as `RecordFields.content`
    gives it, and the amount it covered."""

    content: tuple
    covered: Decimal


@dataclass(slots=True)
class _Staged:
    """A batch checked in Python, before any lock."""

    firsts: list[tuple[int, RecordFields]]  # the first occurrence of each valid record_id
    vouchers: set[str]  # the voucher codes those name
    record_ids: list[Any]  # per record, the record_id its result echoes
    # ord -> ("invalid", message) | ("repeat", ord of the first occurrence, same content)
    settled: dict[int, tuple]


# The checks of `record_parse`'s common case, each over one field of all the records
# joined by newlines: one regular expression pass per field instead of one per record.
_ALL_RECORD_IDS = re.compile(r"(?:[A-Za-z0-9._:-]{1,64}\n)*\Z")
_ALL_TIMESTAMPS = re.compile(rf"(?:{_RFC3339.pattern[:-2]}\n)*\Z")
_ALL_QUANTITIES = re.compile(r"(?:(?!0*(?:\.0*)?\n)[0-9]{1,11}(?:\.[0-9]{1,3})?\n)*\Z")
_ALL_AMOUNTS = re.compile(r"(?:[0-9]{1,12}(?:\.[0-9]{1,2})?\n)*\Z")


_new_tuple = tuple.__new__  # RecordFields without its Python-level __new__: 5,000 a batch


def _column(values: list[Any], pattern: re.Pattern) -> bool:
    """Whether every value is a string matching `pattern`'s line (and holds no newline)."""
    try:
        text = "\n".join(values) + "\n"
    except TypeError:  # not all strings
        return False
    return text.count("\n") == len(values) and pattern.match(text) is not None


def _stage_common(records: list[Any]) -> _Staged | None:
    """`_stage` for a batch whose every record is the common case of `record_parse`
    (eight fields, strings in RFC 3339 and plain decimals) with a record_id of its own:
    the checks run field by field over all records, ~3× faster. None if any record is
    not so; `_stage` then checks record by record and says what is wrong."""
    try:
        if set(map(type, records)) != {dict} or set(map(len, records)) != {8}:
            return None
        ids = [r["record_id"] for r in records]
        vouchers = [r["voucher"] for r in records]
        starts = [r["started_at"] for r in records]
        ends = [r["ended_at"] for r in records]
        resources = [r["resource"] for r in records]
        domestic = [r["domestic"] for r in records]
        quantities = [r["quantity"] for r in records]
        amounts = [r["amount"] for r in records]
    except KeyError:
        return None
    if not (
        _column(ids, _ALL_RECORD_IDS)
        and _column(starts, _ALL_TIMESTAMPS)
        and _column(ends, _ALL_TIMESTAMPS)
        and _column(quantities, _ALL_QUANTITIES)
        and _column(amounts, _ALL_AMOUNTS)
        and len(set(ids)) == len(ids)
        and set(map(type, domestic)) == {bool}
        and set(map(type, vouchers)) == {str}
        and set(map(type, resources)) == {str}
    ):
        return None
    joined = " ".join(vouchers)
    if not joined.isprintable() or min(map(len, vouchers)) < 1 or max(map(len, vouchers)) > 24:
        return None
    joined = " ".join(resources)
    if (
        not joined.isprintable()
        or "\\" in joined
        or min(map(len, resources)) < 1
        or max(map(len, resources)) > 64
        or any(map(str.isspace, resources))
    ):
        return None
    # Years 1 and 9999 may leave the calendar in UTC: checked record by record.
    years = (min(starts)[:4], max(starts)[:4], min(ends)[:4], max(ends)[:4])
    if min(years) == "0001" or max(years) == "9999":
        return None
    try:
        ended = list(map(datetime.fromisoformat, ends))
        started = list(map(datetime.fromisoformat, starts))
    except ValueError:  # e.g. 30 February
        return None
    # Timestamps of one length and one offset (their last six characters) compare as
    # text, ~20× faster than aware datetimes; any others as datetimes.
    if (
        len(set(map(len, starts)) | set(map(len, ends))) == 1
        and len({t[-6:] for t in starts} | {t[-6:] for t in ends}) == 1
    ):
        in_order = all(map(str.__lt__, starts, ends))
    else:
        in_order = all(map(datetime.__lt__, started, ended))
    if not in_order:
        return None
    columns = (ids, vouchers, starts, ends, resources, domestic, quantities, amounts)
    fields = [_new_tuple(RecordFields, values) for values in zip(*columns, ended, strict=True)]
    return _Staged(list(enumerate(fields)), set(vouchers), ids, {})


def _stage(records: list[Any], received_at: datetime) -> _Staged:
    """Check every record and settle in-batch repeats, before any lock."""
    staged = _stage_common(records)
    if staged is None:
        staged = _stage_each(records)
    _reject_future(staged, received_at + FUTURE_TOLERANCE)
    return staged


def _reject_future(staged: _Staged, latest: datetime) -> None:
    """Usage cannot end after it was reported (give or take clock skew): such records,
    and the in-batch repeats of them, are `invalid`. Measured against the time the batch
    arrived, so applying it again decides the same."""
    if not staged.firsts or max(r.ended for _i, r in staged.firsts) <= latest:
        return
    message = _invalid_message(
        {"ended_at": [_("Usage cannot end in the future (more than 5 minutes after now).")]}
    )
    future = {i for i, r in staged.firsts if r.ended > latest}
    staged.firsts = [(i, r) for i, r in staged.firsts if i not in future]
    staged.vouchers = {r.voucher for _i, r in staged.firsts}
    for i in future:
        staged.settled[i] = ("invalid", message)
    for i, settled in list(staged.settled.items()):
        if settled[0] == "repeat" and settled[1] in future:
            staged.settled[i] = ("invalid", message)


def _stage_each(records: list[Any]) -> _Staged:
    staged = _Staged([], set(), [], {})
    first: dict[str, tuple[int, RecordFields]] = {}
    for i, raw in enumerate(records):
        r, errors = record_parse(raw)
        if r is None:
            raw_id = raw.get("record_id") if isinstance(raw, dict) else None
            staged.record_ids.append(text_storable(raw_id) if isinstance(raw_id, str) else None)
            staged.settled[i] = ("invalid", _invalid_message(errors))
            continue
        staged.record_ids.append(r.record_id)
        earlier = first.get(r.record_id)
        if earlier is not None:
            same = r.content() == earlier[1].content()
            staged.settled[i] = ("repeat", earlier[0], same)
            continue
        first[r.record_id] = (i, r)
        staged.firsts.append((i, r))
        staged.vouchers.add(r.voucher)
    return staged


def _invalid_message(errors: dict[str, list[str]]) -> str:
    return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items())


def _stored(dc_id: int, record_ids: list[str]) -> dict[str, _Stored]:
    """The records among `record_ids` this data center sent before. One statement (an
    index probe per id); usually it finds none."""
    with connection.cursor() as cursor:
        # One probe of the unique index per id, whatever the planner estimates (with
        # the ids inlined, it may otherwise read all of this data center's records).
        cursor.execute(
            "SELECT x.record_id, u.* FROM unnest(string_to_array(%s, E'\\n')) AS x(record_id)"
            " CROSS JOIN LATERAL ("
            "  SELECT v.code, u.started_at, u.ended_at, u.resource, u.domestic, u.quantity,"
            "         u.amount, u.covered_amount"
            "  FROM compute_usagerecord u LEFT JOIN vouchers_voucher v ON v.id = u.voucher_id"
            "  WHERE u.data_center_id = %s AND u.record_id = x.record_id LIMIT 1"
            " ) AS u",
            [sql_list(record_ids), dc_id],
        )
        return {row[0]: _Stored(row[1:8], row[8]) for row in cursor.fetchall()}


def _registered_vouchers(dc_id: int, codes: set[str]) -> dict[str, int]:
    """Voucher ids by code, for vouchers of cities this data center is registered for
    (the others are `unknown_voucher` to it)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT v.code, v.id FROM vouchers_voucher v "
            "JOIN compute_registration g ON g.city_id = v.city_id "
            "WHERE g.data_center_id = %s AND g.status = %s"
            " AND v.code = ANY(string_to_array(%s, E'\\n'))",
            [dc_id, RegistrationStatus.ACTIVE, sql_list(codes)],
        )
        return dict(cursor.fetchall())


def _rejection_messages() -> dict[str, str]:
    return {
        "conflict": _("This record_id was sent before with different content."),
        "unknown_voucher": _("No such voucher."),
        "not_authorized": _("This voucher has no active redemption at your data center."),
        "voucher_inactive": _("The voucher is suspended or revoked."),
        "outside_validity": _("The usage ends outside the voucher's validity (plus grace days)."),
    }


_CENT = Decimal("0.01")


class _Validity(NamedTuple):
    """When a voucher's usage may end, as instants and as the local text of each end
    with its UTC offset: a record ending at the same offset is compared as text
    (comparing datetimes of two offsets costs a microsecond, for every record). `_plan`
    applies it, inline: it runs for every record."""

    opens: datetime
    closes: datetime
    opens_local: str
    opens_offset: str
    closes_local: str
    closes_offset: str


@functools.lru_cache(maxsize=4096)
def _validity(valid_from: date, grace_until: date, tz: str) -> _Validity:
    """From valid_from, 00:00 in the city's time zone, to the day after grace_until,
    00:00 there (a local midnight that does not exist takes the offset before it).
    Cached: the vouchers of one issue share their dates."""
    opens = datetime.combine(valid_from, time(), ZoneInfo(tz))
    closes = datetime.combine(grace_until + timedelta(days=1), time(), ZoneInfo(tz))
    o, c = opens.isoformat(), closes.isoformat()
    return _Validity(opens, closes, o[:-6], o[-6:], c[:-6], c[-6:])


_INACTIVE = (VoucherStatus.SUSPENDED.value, VoucherStatus.REVOKED.value)
# status, void_reason and created_at are left to the columns' defaults ("accepted", "",
# the statement's time): each field parsed costs PostgreSQL per row.
_RECORDS_COPY = (
    "COPY compute_usagerecord (data_center_id, record_id, batch_id, started_at, ended_at,"
    " resource, domestic, quantity, amount, id, voucher_id, redemption_id, covered_amount)"
    " FROM STDIN"
)


_ACTIVE_REDEMPTIONS = (
    "SELECT r.voucher_id, r.id, r.amount_cap - r.covered_total, v.status"
    " FROM compute_redemption r JOIN vouchers_voucher v ON v.id = r.voucher_id"
    " WHERE r.data_center_id = %s AND r.status = 'active'"
    " AND r.voucher_id = ANY(string_to_array(%s, E'\\n')::bigint[])"
)


class _Redemption(NamedTuple):
    id: int
    cap_left: Decimal | None  # None: no cap
    voucher_status: str


def _active_redemptions(
    dc_id: int, voucher_ids: Iterable[int], *, lock: bool = False
) -> dict[int, _Redemption]:
    """The active redemptions of these vouchers at this data center, by voucher id; with
    `lock`, locked in id order (the caller holds the vouchers' locks already)."""
    sql = _ACTIVE_REDEMPTIONS + (" ORDER BY r.id FOR UPDATE OF r" if lock else "")
    with connection.cursor() as cursor:
        cursor.execute(sql, [dc_id, sql_list(voucher_ids)])
        return {row[0]: _Redemption(*row[1:]) for row in cursor.fetchall()}


def _plan(
    staged: _Staged,
    stored: dict[str, _Stored],
    voucher_ids: dict[str, int],
    terms: dict[int, ChargeTerms],
    live: dict[int, _Redemption],
) -> list[tuple]:
    """Before any lock: each first occurrence's outcome as things stand, as `(outcome,
    covered)`, or `("accepted", share, voucher id, redemption id)` for the ones to be
    charged, whose records are then written before the locks too (`_settle` decides
    them for good under the locks).

    The terms are fixed at issue but for the program's rates and grace days, which a
    manager may change at any time: a change that commits while a batch is being
    applied counts from the next batch. A redemption accepted or a voucher resumed
    meanwhile, likewise; one closed, suspended or revoked meanwhile is seen under the
    locks."""
    # One look-up per record: by voucher code, what the voucher alone decides.
    by_code: dict[str, Any] = {}
    for code, vid in voucher_ids.items():
        t = terms.get(vid)
        red = live.get(vid)
        if t is None:
            continue
        if red is None:
            by_code[code] = "not_authorized"
        elif red.voucher_status in _INACTIVE:
            by_code[code] = "voucher_inactive"
        else:
            validity = _validity(t.valid_from, t.grace_until, t.timezone)
            by_code[code] = (vid, red.id, t.rate_domestic, t.rate_other, *validity)
    plans: list[tuple] = []
    append = plans.append
    seen = stored.get if stored else None
    for _i, r in staged.firsts:
        if seen is not None:
            before = seen(r.record_id)
            if before is not None:
                same = before.content == r.content()
                append(("duplicate", before.covered) if same else ("conflict", None))
                continue
        _id, code, _start, ended_at, _res, domestic, _qty, amount, ended = r
        known = by_code.get(code, "unknown_voucher")
        if type(known) is str:
            append((known, None))
            continue
        (
            vid,
            red,
            rate_domestic,
            rate_other,
            opens,
            closes,
            opens_local,
            opens_offset,
            closes_local,
            closes_offset,
        ) = known
        # _Validity: as text where the offsets agree, as instants where not.
        local, offset = ended_at[:-6], ended_at[-6:]
        if (local < opens_local if offset == opens_offset else ended < opens) or (
            local > closes_local if offset == closes_offset else ended > closes
        ):
            append(("outside_validity", None))
            continue
        rate = rate_domestic if domestic else rate_other
        append(("accepted", (Decimal(amount) * rate).quantize(_CENT, ROUND_HALF_UP), vid, red))
    return plans


@dataclass(slots=True)
class _Written:
    """The records written before the locks, as planned."""

    record_ids: list[int | None]  # by first occurrence; None if not written
    charges: list[tuple[int, Decimal, int, str]]  # in the order sent, full shares
    totals: dict[int, tuple[int, Decimal]]  # voucher id -> (redemption id, shares)


def _write_records(batch: UsageBatch, staged: _Staged, plans: list[tuple]) -> _Written:
    """COPY the records planned as accepted, with their full share as covered amount,
    and line up their charges as if every voucher can pay them all. Written in
    record_id order, so that two batches sharing record_ids wait for each other in
    one order and cannot deadlock."""
    planned = [k for k, plan in enumerate(plans) if plan[0] == "accepted"]
    written = _Written([None] * len(plans), [], {})
    if not planned:
        return written
    _now, ids = new_ids("compute_usagerecord", len(planned))
    firsts, record_ids = staged.firsts, written.record_ids
    head = f"{batch.data_center_id}\t"
    tail = f"\t{batch.pk}\t"
    lines = []
    names = [r.record_id for _i, r in firsts]
    # record_id and the timestamps cannot hold a special character; the resource is
    # printable, but may hold a backslash. A batch names few resources: escaped once.
    escaped = {name: copy_text(name) for name in {r.resource for _i, r in firsts}}
    for k, rec_id in zip(sorted(planned, key=names.__getitem__), ids, strict=True):
        _accepted, share, vid, red = plans[k]
        record_ids[k] = rec_id
        record_id, _code, started, ended, resource, domestic, quantity, amount, _ = firsts[k][1]
        lines.append(  # in the column order of _RECORDS_COPY
            f"{head}{record_id}{tail}{started}\t{ended}\t{escaped[resource]}\t"
            f"{'t' if domestic else 'f'}\t{quantity}\t{amount}\t{rec_id}\t{vid}\t{red}\t{share}\n"
        )
    with connection.cursor() as cursor, cursor.copy(_RECORDS_COPY) as copy:
        copy.write("".join(lines))
    charges, totals = written.charges, written.totals
    for k in planned:
        _accepted, share, vid, red = plans[k]
        if share:
            charges.append((vid, share, record_ids[k], names[k]))
        totals[vid] = (red, totals[vid][1] + share if vid in totals else share)
    return written


def _vouchers_stand(written: _Written, balances: dict[int, tuple[str, Decimal]]) -> bool:
    """Whether, with the vouchers locked, each is still active and its balance enough
    for all its records' full shares. Usually so: then nothing is decided again record
    by record."""
    for vid, (_red, total) in written.totals.items():
        state = balances.get(vid)
        if state is None or state[0] in _INACTIVE or total > state[1]:
            return False
    return True


_REDEMPTIONS_ADD = (
    "UPDATE compute_redemption AS r"
    " SET covered_total = r.covered_total + t.total, updated_at = now()"
    " FROM unnest(string_to_array(%s, E'\\n')::bigint[],"
    " string_to_array(%s, E'\\n')::numeric[]) AS t(id, total) WHERE r.id = t.id"
)


def _redemptions_take(written: _Written) -> bool:
    """Add the planned totals to the redemptions, if each is still the active one and
    its cap left is enough; if not, change nothing and say so. One statement that locks
    and checks and writes, where locking first (`_active_redemptions(lock=True)`) and
    updating after took two passes over the same rows. The vouchers are locked already,
    so the order the rows are taken in cannot deadlock: every other writer of several
    redemptions holds their vouchers first, and the others (accept, close, void) hold
    one redemption and take nothing after it.

    What one redemption's failure leaves is taken back by a second UPDATE, not by a
    savepoint: rows updated in a subtransaction lost their in-page (HOT) updates in
    the benchmark (a third of the redemption updates then wrote all seven indexes)."""
    totals = sorted(written.totals.values())
    ids, amounts = sql_list(red for red, _t in totals), sql_list(t for _r, t in totals)
    with connection.cursor() as cursor:
        cursor.execute(
            _REDEMPTIONS_ADD + " AND r.status = 'active'"
            " AND (r.amount_cap IS NULL OR r.covered_total + t.total <= r.amount_cap)"
            " RETURNING r.id",
            [ids, amounts],
        )
        taken = [row[0] for row in cursor.fetchall()]
        if len(taken) == len(totals):
            return True
        if taken:  # added back as negative totals
            added = dict(totals)
            cursor.execute(
                _REDEMPTIONS_ADD, [sql_list(taken), sql_list(-added[red] for red in taken)]
            )
    return False


def _settle(
    staged: _Staged,
    plans: list[tuple],
    record_ids: list[int | None],
    balances: dict[int, tuple[str, Decimal]],
    redemptions: dict[int, _Redemption],
) -> tuple[list[tuple], list[tuple[int, Decimal, int, str]], dict]:
    """docs/api.md's rules, for good, with the vouchers and redemptions locked: `covered =
    min(share, balance left, cap left)`, balance and cap shrinking as records are
    accepted in the order sent. Returns each first occurrence's (outcome, covered), the
    charges for `ledger_charge_many`, and the written records to change: {record id:
    covered} or {record id: None} to delete (rejected after all)."""
    balance = {vid: b for vid, (status, b) in balances.items() if status not in _INACTIVE}
    cap_left = {vid: red.cap_left for vid, red in redemptions.items()}
    outcomes: list[tuple] = []
    charges: list[tuple[int, Decimal, int, str]] = []
    changes: dict[int, Decimal | None] = {}
    for k, ((_i, r), plan) in enumerate(zip(staged.firsts, plans, strict=True)):
        if plan[0] != "accepted":
            outcomes.append(plan)
            continue
        _accepted, share, vid, red = plan
        rec_id = record_ids[k]
        locked = redemptions.get(vid)
        if locked is None or locked.id != red:
            outcomes.append(("not_authorized", None))
            changes[rec_id] = None
            continue
        left = balance.get(vid)
        if left is None:
            outcomes.append(("voucher_inactive", None))
            changes[rec_id] = None
            continue
        covered = share if share <= left else left
        cap = cap_left[vid]
        if cap is not None:
            if covered > cap:
                covered = cap
            cap_left[vid] = cap - covered
        balance[vid] = left - covered
        outcomes.append(("accepted", covered))
        if covered != share:
            changes[rec_id] = covered
        if covered:
            charges.append((vid, covered, rec_id, r.record_id))
    return outcomes, charges, changes


def _charge(batch: UsageBatch, staged: _Staged, plans: list[tuple], written: _Written) -> None:
    """Under the locks: lock the vouchers; when the plan stands (`_vouchers_stand`,
    `_redemptions_take`), write its charges; if not, lock the redemptions, settle every
    record again and write what that decides, results included."""
    dc_id = batch.data_center_id
    balances = vouchers_lock(written.totals)
    actor_label = f"data center #{dc_id}"
    left = {vid: b for vid, (_s, b) in balances.items()}
    if _vouchers_stand(written, balances) and _redemptions_take(written):
        ledger_charge_many(balances=left, charges=written.charges, actor_label=actor_label)
        return
    redemptions = _active_redemptions(dc_id, balances, lock=True)
    outcomes, charges, changes = _settle(staged, plans, written.record_ids, balances, redemptions)
    totals: dict[int, Decimal] = {}
    red_of = {vid: red.id for vid, red in redemptions.items()}
    for vid, covered, _rec, _memo in charges:
        totals[red_of[vid]] = totals.get(red_of[vid], 0) + covered
    ledger_charge_many(balances=left, charges=charges, actor_label=actor_label)
    with connection.cursor() as cursor:
        if changes:
            removed = [rec for rec, covered in changes.items() if covered is None]
            cursor.execute(
                "DELETE FROM compute_usagerecord"
                " WHERE id = ANY(string_to_array(%s, E'\\n')::bigint[])",
                [sql_list(removed)],
            )
            reduced = {rec: covered for rec, covered in changes.items() if covered is not None}
            cursor.execute(
                "UPDATE compute_usagerecord AS u SET covered_amount = t.covered"
                " FROM unnest(string_to_array(%s, E'\\n')::bigint[],"
                " string_to_array(%s, E'\\n')::numeric[]) AS t(id, covered) WHERE u.id = t.id",
                [sql_list(reduced), sql_list(reduced.values())],
            )
        cursor.execute(_REDEMPTIONS_ADD, [sql_list(totals), sql_list(totals.values())])
    _finish(batch, _results(staged, outcomes))


def _finish(batch: UsageBatch, results: tuple[str, int, int, int]) -> None:
    """Mark the batch done with its results (committed with the charges)."""
    execute_bound(
        "UPDATE compute_usagebatch SET status = 'done', results_json = %s, accepted = %s,"
        " duplicate = %s, rejected = %s, finished_at = now() WHERE id = %s",
        [*results, batch.pk],
    )


def _apply(batch: UsageBatch) -> None:
    dc_id = batch.data_center_id
    try:
        staged = _stage(body_records(batch.body), batch.created_at)
    except _Inexact:
        staged = _stage(body_records(batch.body, exact=True), batch.created_at)
    # Before any lock, so that workers do this in parallel: look up the vouchers, their
    # terms and redemptions, the record_ids sent before; plan; write the records.
    voucher_ids = _registered_vouchers(dc_id, staged.vouchers)
    terms = voucher_charge_terms(voucher_ids.values())
    live = _active_redemptions(dc_id, terms)
    # Most batches bring only new record_ids: the first attempt does not look for the
    # others, the unique index finds them (waiting for a batch that is writing the same
    # ones until it commits). Then the records sent before are looked up, and the batch
    # planned again.
    stored: dict[str, _Stored] = {}
    for attempt in itertools.count():
        try:
            with transaction.atomic():
                if attempt:
                    stored = _stored(dc_id, [r.record_id for _i, r in staged.firsts])
                plans = _plan(staged, stored, voucher_ids, terms, live)
                written = _write_records(batch, staged, plans)
            break
        except UniqueViolation as error:  # from COPY, which Django does not wrap
            if attempt >= 5 or error.diag.constraint_name != "usage_record_once_per_dc":
                raise
    # The plan's results, written before the locks: they stand unless `_charge` finds
    # that something changed meanwhile, and then it writes them again.
    _finish(batch, _results(staged, plans))
    _charge(batch, staged, plans, written)


def _results(staged: _Staged, outcomes: list[tuple]) -> tuple[str, int, int, int]:
    """docs/api.md's results, in the order sent, as JSON text, and the three counts.
    `outcomes`: `(outcome, covered, ...)` per first occurrence. A repeat of a record_id
    within the batch follows its first occurrence (an accepted first makes it a
    duplicate) if it says the same, and is a conflict if not."""
    if not staged.settled and all(plan[0] == "accepted" for plan in outcomes):
        # The usual batch: written out, no record_id or amount of it needs escaping.
        parts = [
            f'{{"record_id":"{record_id}","status":"accepted","covered_amount":"{plan[1]}",'
            '"error":null}'
            for record_id, plan in zip(staged.record_ids, outcomes, strict=True)
        ]
        return "[" + ",".join(parts) + "]", len(parts), 0, 0
    messages = _rejection_messages()
    if staged.settled:  # some records are not first occurrences: map sent order to them
        position = {i: k for k, (i, _r) in enumerate(staged.firsts)}
        outcomes = {i: outcomes[position[i]] for i in position}
    parts = []
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    for i, record_id in enumerate(staged.record_ids):
        settled = staged.settled.get(i)
        if settled is None:
            outcome, covered = outcomes[i][:2]
            if outcome == "accepted":
                # Written out: most records are this, and their record_id and amount
                # need no escaping.
                counts["accepted"] += 1
                parts.append(
                    f'{{"record_id":"{record_id}","status":"accepted",'
                    f'"covered_amount":"{covered:f}","error":null}}'
                )
                continue
        elif settled[0] == "invalid":
            outcome, covered = "invalid", None
        elif settled[2]:  # a repeat that says the same as its first occurrence
            outcome, covered = outcomes[settled[1]][:2]
            if outcome == "accepted":
                outcome = "duplicate"
        else:
            outcome, covered = "conflict", None
        if outcome == "duplicate":
            status, error = outcome, None
        else:
            status, covered = "rejected", None
            message = settled[1] if outcome == "invalid" else messages[outcome]
            error = {"code": outcome, "message": message}
        counts[status] += 1
        result = {
            "record_id": record_id,
            "status": status,
            "covered_amount": None if covered is None else f"{covered:f}",
            "error": error,
        }
        parts.append(orjson.dumps(result).decode())
    results = "[" + ",".join(parts) + "]"
    return results, counts["accepted"], counts["duplicate"], counts["rejected"]
