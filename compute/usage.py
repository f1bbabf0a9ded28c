"""Usage ingestion: receiving batches and applying them to vouchers, set-wise.

The hot path (tests/bench measures it). Receiving checks only the envelope and stores
the body exactly as it came; a Celery task then applies the batch in one transaction:
1. every record is checked in plain Python and written, with its rejection message if
   it has one, to a temporary table by COPY; PostgreSQL hashes the content and finds
   record_ids repeated within the batch. All of this runs before any lock, so workers
   do it in parallel;
2. under a per-data-center advisory lock (a record sent in two concurrent batches is
   decided once), the vouchers the records name are locked in ascending id order
   (`vouchers.ledger.vouchers_lock`), then their redemptions here;
3. one statement (`_CLASSIFY`) applies every rule of api.md to the first occurrence of
   each record_id and computes the covered amounts, in the order sent;
4. charge entries and balances (`vouchers.ledger.ledger_charge_staged`), the usage
   records, the redemption totals and the batch's per-record results are written by
   one statement each; no record passes through Python after step 1.
The batch row's status is committed together with the charges, so a batch applied twice
(a redelivered task, the sweeper) finds itself `done` and changes nothing.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from compute.models import (
    BatchSource,
    BatchStatus,
    DataCenter,
    RegistrationStatus,
    UsageBatch,
)
from portal.errors import DomainError
from vouchers.ledger import ledger_charge_staged, vouchers_lock

MAX_RECORDS = 5000
MAX_BODY_BYTES = 10 * 1024 * 1024  # api.md's "10 MB", as 10 MiB
# ASCII only: `\d` would also match other scripts' digits, which PostgreSQL refuses.
_RECORD_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}\Z")
_MONEY = re.compile(r"[0-9]{1,12}(\.[0-9]{1,2})?\Z")
_QUANTITY = re.compile(r"[0-9]{1,11}(\.[0-9]{1,3})?\Z")
_ADVISORY_NAMESPACE = 0x5A2  # distinct from the audit trail's advisory locks
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


def _loads_exact(data: bytes | str) -> Any:
    return json.loads(data, parse_float=Decimal)


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


@dataclass(frozen=True, slots=True)
class RecordFields:
    """A valid record, its values as PostgreSQL reads them (COPY text)."""

    record_id: str
    voucher: str
    started_at: str
    ended_at: str
    resource: str
    domestic: bool
    quantity: str
    amount: str


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
    Raises `_Inexact` for a number parsed as a float."""
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
                    [_ADVISORY_NAMESPACE + 1, f"{data_center.pk}:{idempotency_key}"],
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
            body=body.text,
        )
        from compute.tasks import usage_batch_apply_task

        transaction.on_commit(lambda: usage_batch_apply_task.delay(batch.pk))
    return batch, True


# --- applying -----------------------------------------------------------------------------


def usage_batch_apply(*, batch_id: int) -> UsageBatch:
    """Apply a stored batch (see the module docstring). Safe to call any number of times."""
    with transaction.atomic():
        batch = UsageBatch.objects.select_for_update().get(pk=batch_id)
        if batch.status == BatchStatus.DONE:
            return batch
        _apply(batch)
        batch.refresh_from_db(
            fields=["status", "results_json", "accepted", "duplicate", "rejected", "finished_at"]
        )
    return batch


_STAGE_SCHEMA = (
    "ord integer, record_id text, voucher text, started_at timestamptz, ended_at timestamptz,"
    " resource text, domestic boolean, quantity numeric(14, 3), amount numeric(14, 2),"
    " invalid text"
)
_INVALID_LINE_NULLS = "\t\\N" * 7  # voucher .. amount of a rejected record

# Content hashes and the first occurrence of each record_id, before any lock is taken.
# A record_id repeated within the batch follows its first occurrence (see _RESULTS).
_STAGE = """
CREATE TEMP TABLE usage_stage ON COMMIT DROP AS
SELECT h.*, first_value(ord) OVER w AS first_ord, first_value(content_hash) OVER w AS first_hash,
       invalid IS NULL AND first_value(ord) OVER w = ord AS is_first
FROM (
    SELECT r.*, CASE WHEN invalid IS NULL THEN suanli_usage_content_hash(
        voucher, started_at, ended_at, resource, domestic, quantity, amount) END AS content_hash
    FROM usage_raw r
) h
WINDOW w AS (PARTITION BY invalid IS NULL, record_id COLLATE "C" ORDER BY ord)
"""

# Every rule of api.md for the first occurrence of each valid record, in one statement.
# The accepted ones get `covered = clamp(limit - shares before it, 0, share)` where
# `limit = min(balance, cap left)`: a voucher's records in one batch all go through its
# one active redemption at this data center, so balance and cap shrink by the same
# covered amounts and the running minimum reduces to this window sum.
_CLASSIFY = """
CREATE TEMP TABLE usage_applied ON COMMIT DROP AS
WITH s AS (
    SELECT st.ord, st.record_id, st.started_at, st.ended_at, st.resource, st.domestic,
           st.quantity, st.amount, st.content_hash,
           e.content_hash AS old_hash, e.covered_amount AS old_covered,
           v.id AS voucher_id, v.status AS voucher_status, v.balance,
           v.valid_from, v.valid_until, p.rate_domestic, p.rate_other, p.grace_days,
           c.timezone, r.id AS redemption_id, r.amount_cap - r.covered_total AS cap_left
    FROM usage_stage st
    -- One index probe per record (LIMIT keeps the planner from hashing all of this
    -- data center's records, which it may when their statistics are stale).
    LEFT JOIN LATERAL (
        SELECT content_hash, covered_amount FROM compute_usagerecord
        WHERE data_center_id = %(dc)s AND record_id = st.record_id LIMIT 1
    ) e ON true
    LEFT JOIN vouchers_voucher v
           ON v.code = st.voucher AND v.id = ANY(%(vouchers)s)
    LEFT JOIN vouchers_program p ON p.id = v.program_id
    LEFT JOIN portal_city c ON c.id = v.city_id
    LEFT JOIN compute_redemption r
           ON r.voucher_id = v.id AND r.data_center_id = %(dc)s AND r.status = 'active'
    WHERE st.is_first
), o AS (
    SELECT s.*,
        CASE
            WHEN old_hash = content_hash THEN 'duplicate'
            WHEN old_hash IS NOT NULL THEN 'conflict'
            WHEN voucher_id IS NULL THEN 'unknown_voucher'
            WHEN redemption_id IS NULL THEN 'not_authorized'
            WHEN voucher_status IN ('suspended', 'revoked') THEN 'voucher_inactive'
            WHEN ended_at < (valid_from::timestamp AT TIME ZONE timezone)
              OR ended_at > ((valid_until + grace_days + 1)::timestamp AT TIME ZONE timezone)
              THEN 'outside_validity'
            ELSE 'accepted'
        END AS outcome,
        round(amount * CASE WHEN domestic THEN rate_domestic ELSE rate_other END, 2)
            AS share
    FROM s
), a AS (
    SELECT o.*,
        greatest(0, least(
            share,
            least(balance, coalesce(cap_left, balance))
              - coalesce(sum(share) FILTER (WHERE outcome = 'accepted') OVER (
                    PARTITION BY voucher_id ORDER BY ord
                    ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
        )) AS covered
    FROM o
)
SELECT ord, record_id, voucher_id, redemption_id, started_at, ended_at, resource, domestic,
    quantity, amount, content_hash, outcome, covered, old_covered,
    CASE WHEN outcome = 'accepted' THEN nextval(%(record_seq)s::regclass) END AS rec_id,
    CASE WHEN outcome = 'accepted' AND covered > 0
         THEN nextval(%(entry_seq)s::regclass) END AS entry_id
FROM a
"""

_INSERT_RECORDS = """
INSERT INTO compute_usagerecord
    (id, data_center_id, record_id, batch_id, voucher_id, redemption_id,
     started_at, ended_at, resource, domestic, quantity, amount, covered_amount,
     content_hash, status, charge_entry_id, void_reason, created_at)
SELECT rec_id, %s, record_id, %s, voucher_id, redemption_id, started_at,
       ended_at, resource, domestic, quantity, amount, covered, content_hash,
       'accepted', entry_id, '', now()
FROM usage_applied WHERE outcome = 'accepted'
"""

_REDEMPTION_TOTALS = """
UPDATE compute_redemption AS r
SET covered_total = r.covered_total + t.total, updated_at = now()
FROM (SELECT redemption_id, sum(covered) AS total FROM usage_applied
      WHERE outcome = 'accepted' AND covered > 0 GROUP BY redemption_id) AS t
WHERE r.id = t.redemption_id
"""

# The results of api.md, in the order sent, written with the batch's counts. A repeat of
# a record_id within the batch with the same content is a duplicate of its first
# occurrence (or gets its rejection); with other content it is a conflict.
_RESULTS = """
WITH x AS (
    SELECT st.ord, st.record_id, st.invalid, st.ord = st.first_ord AS first,
        CASE
            WHEN st.invalid IS NOT NULL THEN 'invalid'
            WHEN st.ord <> st.first_ord AND st.content_hash <> st.first_hash THEN 'conflict'
            ELSE a.outcome
        END AS outcome,
        a.covered, a.old_covered
    FROM usage_stage st LEFT JOIN usage_applied a ON a.ord = st.first_ord
), y AS (
    SELECT ord, record_id,
        CASE WHEN outcome = 'accepted' AND first THEN 'accepted'
             WHEN outcome IN ('accepted', 'duplicate') THEN 'duplicate'
             ELSE 'rejected' END AS status,
        CASE outcome WHEN 'accepted' THEN covered WHEN 'duplicate' THEN old_covered END
            AS covered,
        CASE WHEN outcome NOT IN ('accepted', 'duplicate') THEN json_build_object(
            'code', outcome,
            'message', coalesce(invalid, %(messages)s::jsonb ->> outcome)) END AS error
    FROM x
), t AS (
    SELECT '[' || string_agg(
               '{"record_id":' || coalesce(to_json(record_id)::text, 'null')
               || ',"status":"' || status
               || '","covered_amount":' || coalesce('"' || round(covered, 2) || '"', 'null')
               || ',"error":' || coalesce(error::text, 'null') || '}',
               ',' ORDER BY ord) || ']' AS results,
           count(*) FILTER (WHERE status = 'accepted') AS accepted,
           count(*) FILTER (WHERE status = 'duplicate') AS duplicate,
           count(*) FILTER (WHERE status = 'rejected') AS rejected
    FROM y
)
UPDATE compute_usagebatch AS b
SET status = 'done', results_json = t.results, accepted = t.accepted,
    duplicate = t.duplicate, rejected = t.rejected, finished_at = now()
FROM t WHERE b.id = %(batch)s
"""

_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: str) -> str:
    """Any string as a COPY text field: escaped, NUL and unpaired surrogates replaced."""
    value = value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode()
    return value.translate(_COPY_ESCAPES)


def _invalid_message(errors: dict[str, list[str]]) -> str:
    return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items())


def _stage_lines(records: list[Any]) -> list[str]:
    """One COPY line per record: its checked values, or its rejection message."""
    lines = []
    for i, raw in enumerate(records):
        r, errors = record_parse(raw)
        if r is None:
            raw_id = raw.get("record_id") if isinstance(raw, dict) else None
            record_id = _copy_text(raw_id) if isinstance(raw_id, str) else "\\N"
            message = _copy_text(_invalid_message(errors))
            lines.append(f"{i}\t{record_id}{_INVALID_LINE_NULLS}\t{message}\n")
            continue
        # record_id and the timestamps cannot hold a special character; the voucher and
        # the resource are printable, but may hold a backslash.
        voucher, resource = r.voucher, r.resource
        if "\\" in voucher:
            voucher = _copy_text(voucher)
        if "\\" in resource:
            resource = _copy_text(resource)
        lines.append(
            f"{i}\t{r.record_id}\t{voucher}\t{r.started_at}\t{r.ended_at}\t{resource}\t"
            f"{'t' if r.domestic else 'f'}\t{r.quantity}\t{r.amount}\t\\N\n"
        )
    return lines


def _rejection_messages() -> str:
    return json.dumps(
        {
            "conflict": _("This record_id was sent before with different content."),
            "unknown_voucher": _("No such voucher."),
            "not_authorized": _("This voucher has no active redemption at your data center."),
            "voucher_inactive": _("The voucher is suspended or revoked."),
            "outside_validity": _(
                "The usage ends outside the voucher's validity (plus grace days)."
            ),
        }
    )


@functools.cache
def _sequence(table: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
        return cursor.fetchone()[0]


def _apply(batch: UsageBatch) -> None:
    dc_id = batch.data_center_id
    try:
        lines = _stage_lines(body_records(batch.body))
    except _Inexact:
        lines = _stage_lines(body_records(batch.body, exact=True))
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMP TABLE usage_raw ({_STAGE_SCHEMA}) ON COMMIT DROP")
        with cursor.copy("COPY usage_raw FROM STDIN") as copy:
            copy.write("".join(lines))
        cursor.execute(_STAGE)
        # Autovacuum never analyses temporary tables; without these figures the planner
        # joins 5,000 staged records by nested loops, several times slower.
        cursor.execute("ANALYZE usage_stage (is_first)")

        # From here on, one batch of a data center at a time.
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_ADVISORY_NAMESPACE, dc_id])
        # Vouchers of the cities this data center is registered for (others are
        # "unknown"), locked in id order, then their active redemptions here.
        cursor.execute(
            "SELECT v.id FROM vouchers_voucher v "
            "JOIN compute_registration g ON g.city_id = v.city_id "
            "WHERE g.data_center_id = %s AND g.status = %s "
            "AND v.code IN (SELECT voucher FROM usage_stage WHERE is_first)",
            [dc_id, RegistrationStatus.ACTIVE],
        )
        voucher_ids = vouchers_lock(row[0] for row in cursor.fetchall())
        cursor.execute(
            "SELECT id FROM compute_redemption WHERE data_center_id = %s AND status = 'active' "
            "AND voucher_id = ANY(%s) ORDER BY id FOR UPDATE",
            [dc_id, voucher_ids],
        )
        cursor.execute(
            _CLASSIFY,
            {
                "dc": dc_id,
                "vouchers": voucher_ids,
                "record_seq": _sequence("compute_usagerecord"),
                "entry_seq": _sequence("vouchers_ledgerentry"),
            },
        )
        ledger_charge_staged(
            charges_sql=(
                "SELECT entry_id, voucher_id, covered AS amount, rec_id AS usage_record_id, "
                "record_id AS memo, ord FROM usage_applied WHERE entry_id IS NOT NULL"
            ),
            params=[],
            actor_label=f"data center #{dc_id}",
        )
        cursor.execute(_INSERT_RECORDS, [dc_id, batch.pk])
        cursor.execute(_REDEMPTION_TOTALS)
        cursor.execute(_RESULTS, {"batch": batch.pk, "messages": _rejection_messages()})
        # Dropped now, not only at commit: a caller may apply several batches in one
        # transaction.
        cursor.execute("DROP TABLE usage_raw, usage_stage, usage_applied")


def usage_batches_stale(*, older_than: timedelta) -> list[int]:
    """Batches still not done well after they arrived: their task was lost or its worker
    died. The sweeper enqueues them again; applying is idempotent."""
    cutoff = timezone.now() - older_than
    return list(
        UsageBatch.objects.filter(~Q(status=BatchStatus.DONE), created_at__lt=cutoff)
        .order_by("pk")
        .values_list("pk", flat=True)[:500]
    )
