"""Usage ingestion: receiving batches and applying them to vouchers, set-wise.

The hot path. A batch is applied in one transaction that
1. reads everything it needs in a handful of queries (vouchers by code, existing records
   by id, live redemptions),
2. locks the vouchers it touches in ascending id order (`vouchers.ledger.vouchers_lock`),
   then their redemptions in ascending id order,
3. walks the records in the order sent, computing each covered amount from the running
   balances and caps,
4. writes records and ledger entries with COPY, balances and redemption totals with one
   UPDATE each, and the batch's results with one UPDATE.
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
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
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
    Redemption,
    RedemptionStatus,
    RegistrationStatus,
    UsageBatch,
)
from portal.errors import DomainError
from vouchers.ledger import (
    Posting,
    entry_ids_reserve,
    ledger_post_many,
    vouchers_lock,
)
from vouchers.models import ZERO, EntryKind, Voucher, VoucherStatus

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


def _validity_window(voucher: Voucher, grace_days: int, tz: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(voucher.valid_from, datetime.min.time(), tzinfo=tz)
    end = datetime.combine(
        voucher.valid_until + timedelta(days=grace_days + 1), datetime.min.time(), tzinfo=tz
    )
    return start, end


def usage_batch_apply(*, batch_id: int) -> UsageBatch:
    """Apply a stored batch (see the module docstring). Safe to call any number of times."""
    with transaction.atomic():
        batch = UsageBatch.objects.select_for_update().get(pk=batch_id)
        if batch.status == BatchStatus.DONE:
            return batch
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)", [_ADVISORY_NAMESPACE, batch.data_center_id]
            )
        _apply(batch)
    return batch


def _apply(batch: UsageBatch) -> None:
    dc_id = batch.data_center_id
    parsed: list[tuple[ParsedRecord | None, dict, Any]] = []
    for raw in batch.records:
        record, errors = record_parse(raw)
        parsed.append((record, errors, raw.get("record_id") if isinstance(raw, dict) else None))
    good = [p for p, _e, _r in parsed if p is not None]

    # One array parameter instead of thousands of IN placeholders.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT record_id, content_hash, covered_amount FROM compute_usagerecord "
            "WHERE data_center_id = %s AND record_id = ANY(%s)",
            [dc_id, list({p.record_id for p in good})],
        )
        existing = {rid: (h, cov) for rid, h, cov in cursor.fetchall()}
        # Vouchers of the cities this data center is registered for; others are "unknown".
        cursor.execute(
            "SELECT v.code, v.id FROM vouchers_voucher v "
            "JOIN compute_registration r ON r.city_id = v.city_id "
            "WHERE r.data_center_id = %s AND r.status = %s AND v.code = ANY(%s)",
            [dc_id, RegistrationStatus.ACTIVE, list({p.voucher for p in good})],
        )
        voucher_ids = dict(cursor.fetchall())
    vouchers = vouchers_lock(voucher_ids.values())
    programs = {}
    if vouchers:
        from vouchers.models import Program

        programs = {
            p.pk: p
            for p in Program.objects.filter(
                pk__in={v.program_id for v in vouchers.values()}
            ).select_related("city")
        }
    redemptions = {
        r.voucher_id: r
        for r in Redemption.objects.select_for_update()
        .filter(
            data_center_id=dc_id,
            voucher_id__in=list(vouchers),
            status=RedemptionStatus.ACTIVE,
        )
        .order_by("pk")
    }

    balances = {vid: v.balance for vid, v in vouchers.items()}
    cap_left = {r.pk: r.cap_left for r in redemptions.values()}
    seen: dict[str, tuple[str, Decimal]] = {}
    results: list[dict] = []
    accepted: list[tuple[ParsedRecord, Voucher, Redemption, Decimal]] = []
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}

    def reject(rid, code, msg):
        counts["rejected"] += 1
        results.append(_result(rid, "rejected", None, code, msg))

    for record, errors, raw_id in parsed:
        if record is None:
            reject(raw_id, "invalid", _invalid_message(errors))
            continue
        earlier = seen.get(record.record_id) or existing.get(record.record_id)
        if earlier is not None:
            if earlier[0] == record.content_hash:
                counts["duplicate"] += 1
                results.append(_result(record.record_id, "duplicate", earlier[1]))
            else:
                reject(
                    record.record_id,
                    "conflict",
                    _("This record_id was sent before with different content."),
                )
            continue
        vid = voucher_ids.get(record.voucher)
        if vid is None or vid not in vouchers:
            reject(record.record_id, "unknown_voucher", _("No such voucher."))
            continue
        voucher = vouchers[vid]
        redemption = redemptions.get(vid)
        if redemption is None:
            reject(
                record.record_id,
                "not_authorized",
                _("This voucher has no active redemption at your data center."),
            )
            continue
        if voucher.status in (VoucherStatus.SUSPENDED, VoucherStatus.REVOKED):
            reject(record.record_id, "voucher_inactive", _("The voucher is suspended or revoked."))
            continue
        program = programs[voucher.program_id]
        start, end = _validity_window(voucher, program.grace_days, ZoneInfo(program.city.timezone))
        if record.ended_at < start or record.ended_at > end:
            reject(
                record.record_id,
                "outside_validity",
                _("The usage ends outside the voucher's validity (plus grace days)."),
            )
            continue
        rate = program.rate_domestic if record.domestic else program.rate_other
        covered = min((record.amount * rate).quantize(CENT, rounding=ROUND_HALF_UP), balances[vid])
        left = cap_left[redemption.pk]
        if left is not None:
            covered = min(covered, left)
            cap_left[redemption.pk] = left - covered
        covered = max(covered, ZERO)
        balances[vid] -= covered
        seen[record.record_id] = (record.content_hash, covered)
        accepted.append((record, voucher, redemption, covered))
        counts["accepted"] += 1
        results.append(_result(record.record_id, "accepted", covered))

    _write(batch, accepted, vouchers)
    now = timezone.now()
    UsageBatch.objects.filter(pk=batch.pk).update(
        status=BatchStatus.DONE,
        results=results,
        accepted=counts["accepted"],
        duplicate=counts["duplicate"],
        rejected=counts["rejected"],
        finished_at=now,
    )
    batch.status, batch.results = BatchStatus.DONE, results
    batch.accepted, batch.duplicate, batch.rejected = (
        counts["accepted"],
        counts["duplicate"],
        counts["rejected"],
    )


def _write(batch: UsageBatch, accepted: list, vouchers: dict[int, Voucher]) -> None:
    if not accepted:
        return
    record_ids = _reserve_ids("compute_usagerecord", len(accepted))
    charged = [i for i, (_r, _v, _d, covered) in enumerate(accepted) if covered > 0]
    entry_ids = iter(entry_ids_reserve(len(charged)))
    running = {vid: v.balance for vid, v in vouchers.items()}
    postings: list[Posting] = []
    entry_of: dict[int, int] = {}
    for i in charged:
        record, voucher, _redemption, covered = accepted[i]
        running[voucher.pk] -= covered
        entry_id = next(entry_ids)
        entry_of[i] = entry_id
        postings.append(
            Posting(
                voucher_id=voucher.pk,
                kind=EntryKind.CHARGE,
                amount=-covered,
                entry_id=entry_id,
                balance_after=running[voucher.pk],
                usage_record_id=record_ids[i],
                memo=record.record_id,
            )
        )
    ledger_post_many(
        vouchers=vouchers, postings=postings, actor_label=f"data center #{batch.data_center_id}"
    )
    now = timezone.now()
    with connection.cursor() as cursor:
        with cursor.copy(
            "COPY compute_usagerecord (id, data_center_id, record_id, batch_id, voucher_id, "
            "redemption_id, started_at, ended_at, resource, domestic, quantity, amount, "
            "covered_amount, content_hash, status, charge_entry_id, void_reason, created_at) "
            "FROM STDIN"
        ) as copy:
            for i, (record, voucher, redemption, covered) in enumerate(accepted):
                copy.write_row(
                    (
                        record_ids[i],
                        batch.data_center_id,
                        record.record_id,
                        batch.pk,
                        voucher.pk,
                        redemption.pk,
                        record.started_at,
                        record.ended_at,
                        record.resource,
                        record.domestic,
                        record.quantity,
                        record.amount,
                        covered,
                        record.content_hash,
                        "accepted",
                        entry_of.get(i),
                        "",
                        now,
                    )
                )
        totals: dict[int, Decimal] = {}
        for _record, _voucher, redemption, covered in accepted:
            totals[redemption.pk] = totals.get(redemption.pk, ZERO) + covered
        values = ", ".join(["(%s, %s::numeric)"] * len(totals))
        cursor.execute(
            "UPDATE compute_redemption AS r SET covered_total = r.covered_total + x.amount, "  # noqa: S608 - placeholders only
            f"updated_at = %s FROM (VALUES {values}) AS x(id, amount) WHERE r.id = x.id",
            [now, *[item for pair in sorted(totals.items()) for item in pair]],
        )


def _reserve_ids(table: str, count: int) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [table, count],
        )
        return [row[0] for row in cursor.fetchall()]


def usage_batches_stale(*, older_than: timedelta) -> list[int]:
    """Batches still not done well after they arrived: their task was lost or its worker
    died. The sweeper enqueues them again; applying is idempotent."""
    cutoff = timezone.now() - older_than
    return list(
        UsageBatch.objects.filter(~Q(status=BatchStatus.DONE), created_at__lt=cutoff)
        .order_by("pk")
        .values_list("pk", flat=True)[:500]
    )
