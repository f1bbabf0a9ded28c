"""Usage ingestion: receiving batches and applying them to vouchers, set-wise.

The hot path. A batch is applied in one transaction that
1. validates and hashes every record in plain Python (bad ones are rejected per record),
2. COPYs the rest into a temporary staging table and locks the vouchers they name in
   ascending id order (`vouchers.ledger.vouchers_lock`), then their redemptions,
3. classifies every staged record and computes its covered amount in one SQL statement
   (`_CLASSIFY`), in the order sent,
4. writes charge entries and balances through `vouchers.ledger.ledger_charge_staged`,
   then the usage records, the redemption totals and the batch's results.
A per-data-center advisory lock makes batches of one data center apply one at a time,
so a record sent in two concurrent batches is decided once. The batch row's status is
committed together with the charges, so a batch applied twice (a redelivered task, the
sweeper) finds itself `done` and changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

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

CENT = Decimal("0.01")
MILLI = Decimal("0.001")
MAX_RECORDS = 5000
MAX_BODY_BYTES = 10 * 1024 * 1024  # api.md's "10 MB", as 10 MiB
_RECORD_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}\Z")
_MONEY = re.compile(r"\d{1,12}(\.\d{1,2})?\Z")
_QUANTITY = re.compile(r"\d{1,11}(\.\d{1,3})?\Z")
_ADVISORY_NAMESPACE = 0x5A2  # distinct from the audit trail's advisory locks
_RECORD_FIELDS = (
    "record_id",
    "voucher",
    "started_at",
    "ended_at",
    "resource",
    "domestic",
    "quantity",
    "amount",
)


# --- validation ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParsedRecord:
    record_id: str
    voucher: str
    started_at: datetime
    ended_at: datetime
    resource: str
    domestic: bool
    quantity: Decimal
    amount: Decimal
    content_hash: str


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
    return parsed


def _decimal(value: Any, pattern: re.Pattern, places: Decimal) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        value = str(value)
    elif isinstance(value, float | Decimal):
        value = format(Decimal(str(value)), "f")
    if not isinstance(value, str) or not pattern.match(value):
        return None
    try:
        return Decimal(value).quantize(places)
    except InvalidOperation:  # pragma: no cover - the pattern already excludes these
        return None


def record_parse(raw: Any) -> tuple[ParsedRecord | None, dict[str, list[str]]]:
    """Validate one raw record (a JSON object). Plain Python rather than a DRF
    serializer: this runs for every record of every batch (tests/bench measures both)."""
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
        or not 0 < len(resource.strip()) <= 64
        or not resource.isprintable()
    ):
        errors["resource"] = [_("The accelerator model is required (at most 64 characters).")]
    domestic = raw.get("domestic")
    if not isinstance(domestic, bool):
        errors["domestic"] = [_("Must be true or false.")]
    quantity = _decimal(raw.get("quantity"), _QUANTITY, MILLI)
    if quantity is None or quantity <= 0:
        errors["quantity"] = [_("A positive number of accelerator-hours, at most 3 decimals.")]
    amount = _decimal(raw.get("amount"), _MONEY, CENT)
    if amount is None:
        errors["amount"] = [_("A non-negative amount in yuan with at most 2 decimals.")]
    unknown = set(raw) - set(_RECORD_FIELDS)
    if unknown:
        errors["record"] = [
            _("Unknown fields: %(fields)s.") % {"fields": ", ".join(sorted(unknown))}
        ]
    if errors:
        return None, errors
    content = "|".join(
        (
            voucher,
            started.astimezone(ZoneInfo("UTC")).isoformat(),
            ended.astimezone(ZoneInfo("UTC")).isoformat(),
            resource,
            "1" if domestic else "0",
            str(quantity),
            str(amount),
        )
    )
    return (
        ParsedRecord(
            record_id,
            voucher,
            started,
            ended,
            resource,
            domestic,
            quantity,
            amount,
            hashlib.sha256(content.encode()).hexdigest(),
        ),
        {},
    )


# --- receiving ----------------------------------------------------------------------------


def _records_json(records: list[Any]) -> str:
    # ASCII escapes keep any string (lone surrogates too) storable as text.
    return json.dumps(records, separators=(",", ":"), default=str)


def body_hash(records_json: str) -> str:
    return hashlib.sha256(records_json.encode()).hexdigest()


def usage_batch_receive(
    *,
    data_center: DataCenter,
    records: list[Any],
    idempotency_key: str = "",
    source: str = BatchSource.PUSH,
) -> tuple[UsageBatch, bool]:
    """Store a batch durably and enqueue its application. Returns (batch, created).

    With an idempotency key, the same key and body return the first batch; the same key
    with another body is a conflict.
    """
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
    text = _records_json(records)
    digest = body_hash(text)
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
            earlier = UsageBatch.objects.filter(
                data_center=data_center, idempotency_key=idempotency_key
            ).first()
            if earlier is not None:
                if earlier.body_hash != digest:
                    raise DomainError(
                        _("This Idempotency-Key was used with a different body."),
                        code="conflict",
                    )
                return earlier, False
        batch = UsageBatch.objects.create(
            data_center=data_center,
            source=source,
            idempotency_key=idempotency_key,
            body_hash=digest,
            received=len(records),
            records_json=text,
        )
        from compute.tasks import usage_batch_apply_task

        transaction.on_commit(lambda: usage_batch_apply_task.delay(batch.pk))
    return batch, True


# --- applying -----------------------------------------------------------------------------


def _result(record_id: Any, status: str, covered: Decimal | None, code: str = "", msg: str = ""):
    return {
        "record_id": record_id if isinstance(record_id, str) else None,
        "status": status,
        "covered_amount": f"{covered:.2f}" if covered is not None else None,
        "error": {"code": code, "message": msg} if code else None,
    }


def _invalid_message(errors: dict[str, list[str]]) -> str:
    return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items())


def usage_batch_apply(*, batch_id: int) -> UsageBatch:
    """Apply a stored batch (see the module docstring). Safe to call any number of times."""
    with transaction.atomic():
        batch = UsageBatch.objects.select_for_update().get(pk=batch_id)
        if batch.status == BatchStatus.DONE:
            return batch
        _apply(batch)
    return batch


_STAGE_COLUMNS = (
    "ord, record_id, voucher, started_at, ended_at, resource, domestic, quantity, amount, "
    "content_hash"
)

# Every rule of api.md for the staged records, in one statement. Each row of `usage_stage`
# is classified, and the accepted ones get `covered = clamp(limit - shares before it, 0,
# share)` where `limit = min(balance, cap left)`: a voucher's records in one batch all
# go through its one active redemption at this data center, so balance and cap shrink by
# the same covered amounts and the running minimum reduces to this window sum.
_CLASSIFY = """
CREATE TEMP TABLE usage_applied ON COMMIT DROP AS
WITH s AS (
    SELECT st.*, e.content_hash AS old_hash, e.covered_amount AS old_covered,
           v.id AS voucher_id, v.status AS voucher_status, v.balance,
           v.valid_from, v.valid_until, p.rate_domestic, p.rate_other, p.grace_days,
           c.timezone, r.id AS redemption_id, r.amount_cap - r.covered_total AS cap_left
    FROM usage_stage st
    LEFT JOIN compute_usagerecord e
           ON e.data_center_id = %(dc)s AND e.record_id = st.record_id
    LEFT JOIN vouchers_voucher v
           ON v.code = st.voucher AND v.id = ANY(%(vouchers)s)
    LEFT JOIN vouchers_program p ON p.id = v.program_id
    LEFT JOIN portal_city c ON c.id = v.city_id
    LEFT JOIN compute_redemption r
           ON r.voucher_id = v.id AND r.data_center_id = %(dc)s AND r.status = 'active'
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
SELECT a.*,
    CASE WHEN outcome = 'accepted' THEN nextval(%(record_seq)s::regclass) END AS rec_id,
    CASE WHEN outcome = 'accepted' AND covered > 0
         THEN nextval(%(entry_seq)s::regclass) END AS entry_id
FROM a
"""


def _stage_line(i: int, r: ParsedRecord) -> str:
    # COPY text format; record_id, voucher and resource were validated printable, but a
    # backslash is still possible in the latter two and must be escaped.
    return (
        f"{i}\t{r.record_id}\t{r.voucher.replace(chr(92), chr(92) * 2)}\t"
        f"{r.started_at.isoformat()}\t{r.ended_at.isoformat()}\t"
        f"{r.resource.replace(chr(92), chr(92) * 2)}\t{'t' if r.domestic else 'f'}\t"
        f"{r.quantity}\t{r.amount}\t{r.content_hash}\n"
    )


def _sequence(table: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
        return cursor.fetchone()[0]


def _apply(batch: UsageBatch) -> None:
    dc_id = batch.data_center_id
    raw_records = batch.records
    results: list[dict | None] = [None] * len(raw_records)
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    staged: list[str] = []
    first: dict[str, tuple[int, str]] = {}  # record_id -> (position, content hash)
    repeats: list[tuple[int, int, bool]] = []  # (position, first position, same content)
    for i, raw in enumerate(raw_records):
        record, errors = record_parse(raw)
        if record is None:
            raw_id = raw.get("record_id") if isinstance(raw, dict) else None
            results[i] = _result(raw_id, "rejected", None, "invalid", _invalid_message(errors))
            continue
        earlier = first.get(record.record_id)
        if earlier is not None:
            repeats.append((i, earlier[0], earlier[1] == record.content_hash))
            continue
        first[record.record_id] = (i, record.content_hash)
        staged.append(_stage_line(i, record))

    # Validation above runs in parallel across workers; from here on, one batch of a
    # data center at a time, so a record in two concurrent batches is decided once.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_ADVISORY_NAMESPACE, dc_id])
    outcomes: dict[int, tuple] = {}
    if staged:
        outcomes = _classify_and_charge(batch, dc_id, staged)

    for i, (outcome, covered, old_covered) in outcomes.items():
        rid = raw_records[i]["record_id"]
        if outcome == "accepted":
            results[i] = _result(rid, "accepted", covered)
        elif outcome == "duplicate":
            results[i] = _result(rid, "duplicate", old_covered)
        else:
            results[i] = _result(rid, "rejected", None, outcome, _rejection_message(outcome))
    # A record_id repeated within the batch follows its first occurrence: the same content
    # is a duplicate of it (or gets its rejection), other content is a conflict.
    for i, j, same in repeats:
        rid = raw_records[i]["record_id"]
        before = results[j]
        if not same:
            results[i] = _result(rid, "rejected", None, "conflict", _rejection_message("conflict"))
        elif before["status"] in ("accepted", "duplicate"):
            results[i] = {**before, "status": "duplicate"}
        else:
            results[i] = dict(before)
    for r in results:
        counts[r["status"]] += 1
    UsageBatch.objects.filter(pk=batch.pk).update(
        status=BatchStatus.DONE,
        results=results,
        accepted=counts["accepted"],
        duplicate=counts["duplicate"],
        rejected=counts["rejected"],
        finished_at=timezone.now(),
    )
    batch.status, batch.results = BatchStatus.DONE, results
    batch.accepted, batch.duplicate, batch.rejected = (
        counts["accepted"],
        counts["duplicate"],
        counts["rejected"],
    )


def _rejection_message(code: str) -> str:
    return {
        "conflict": _("This record_id was sent before with different content."),
        "unknown_voucher": _("No such voucher."),
        "not_authorized": _("This voucher has no active redemption at your data center."),
        "voucher_inactive": _("The voucher is suspended or revoked."),
        "outside_validity": _("The usage ends outside the voucher's validity (plus grace days)."),
    }[code]


def _classify_and_charge(batch: UsageBatch, dc_id: int, staged: list[str]) -> dict[int, tuple]:
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMP TABLE usage_stage ({_STAGE_SCHEMA}) ON COMMIT DROP")
        with cursor.copy(f"COPY usage_stage ({_STAGE_COLUMNS}) FROM STDIN") as copy:
            copy.write("".join(staged))
        # Vouchers of the cities this data center is registered for (others are
        # "unknown"), locked in id order, then their active redemptions here.
        cursor.execute(
            "SELECT v.id FROM vouchers_voucher v "
            "JOIN compute_registration g ON g.city_id = v.city_id "
            "WHERE g.data_center_id = %s AND g.status = %s "
            "AND v.code IN (SELECT voucher FROM usage_stage)",
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
        cursor.execute(
            """
            INSERT INTO compute_usagerecord
                (id, data_center_id, record_id, batch_id, voucher_id, redemption_id,
                 started_at, ended_at, resource, domestic, quantity, amount, covered_amount,
                 content_hash, status, charge_entry_id, void_reason, created_at)
            SELECT rec_id, %s, record_id, %s, voucher_id, redemption_id, started_at,
                   ended_at, resource, domestic, quantity, amount, covered, content_hash,
                   'accepted', entry_id, '', now()
            FROM usage_applied WHERE outcome = 'accepted'
            """,
            [dc_id, batch.pk],
        )
        cursor.execute(
            """
            UPDATE compute_redemption AS r
            SET covered_total = r.covered_total + t.total, updated_at = now()
            FROM (SELECT redemption_id, sum(covered) AS total FROM usage_applied
                  WHERE outcome = 'accepted' GROUP BY redemption_id) AS t
            WHERE r.id = t.redemption_id
            """
        )
        cursor.execute("SELECT ord, outcome, covered, old_covered FROM usage_applied")
        outcomes = {ord_: (outcome, cov, old) for ord_, outcome, cov, old in cursor.fetchall()}
        # Dropped now, not only at commit: a caller may apply several batches in one
        # transaction.
        cursor.execute("DROP TABLE usage_stage, usage_applied")
        return outcomes


_STAGE_SCHEMA = (
    "ord integer PRIMARY KEY, record_id text, voucher text, started_at timestamptz, "
    "ended_at timestamptz, resource text, domestic boolean, quantity numeric(14, 3), "
    "amount numeric(14, 2), content_hash text"
)


def usage_batches_stale(*, older_than: timedelta) -> list[int]:
    """Batches still not done well after they arrived: their task was lost or its worker
    died. The sweeper enqueues them again; applying is idempotent."""
    cutoff = timezone.now() - older_than
    return list(
        UsageBatch.objects.filter(~Q(status=BatchStatus.DONE), created_at__lt=cutoff)
        .order_by("pk")
        .values_list("pk", flat=True)[:500]
    )
