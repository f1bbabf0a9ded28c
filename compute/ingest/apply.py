"""Applying a stored batch, in one transaction (see the package docstring): plan and
write the records before any lock, then charge under the vouchers' locks."""

from __future__ import annotations

import functools
import itertools
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from django.db import connection, transaction
from psycopg.errors import UniqueViolation

from compute.ingest.body import Inexact, body_records
from compute.ingest.check import RecordFields, Staged, stage
from compute.ingest.keys import KEY_CONSTRAINT, RECORDS_DELETE, keys_copy
from compute.ingest.plan import (
    INACTIVE,
    ActiveRedemption,
    Outcome,
    Plan,
    StoredRecord,
    active_redemptions,
    plan,
    registered_vouchers,
    stored_records,
)
from compute.ingest.results import Results, results
from compute.ingest.sums import usage_sums
from compute.integrity.pipeline import batch_flags, batch_raise
from compute.metrics import batch_applied
from compute.models import BatchStatus, UsageBatch
from compute.rollups import rollups_add_batch
from portal.db import copy_lines_plain, copy_rows, copy_text, execute_bound, new_ids, sql_list
from vouchers.ledger import (
    ledger_charge_many,
    voucher_charge_terms,
    vouchers_lock,
)

# status, void_reason and created_at are left to the columns' defaults ("accepted", "",
# the statement's time): each field parsed costs PostgreSQL per row.
_RECORDS_COPY = (
    "COPY compute_usagerecord (data_center_id, record_id, batch_id, started_at, ended_at,"
    " resource, domestic, quantity, amount, id, voucher_id, redemption_id, covered_amount)"
    " FROM STDIN"
)
_RECORDS_COPY_COLUMNS = 13


class Charge(NamedTuple):
    """One ledger charge, as `vouchers.ledger.ledger_charge_many` takes it."""

    voucher_id: int
    amount: Decimal
    usage_record_id: int
    memo: str  # the record_id


# Built from a ready tuple in C (see compute.ingest.check): one per accepted record.
_charge_of = functools.partial(tuple.__new__, Charge)


class RedemptionTotal(NamedTuple):
    redemption_id: int
    total: Decimal


@dataclass(slots=True)
class Written:
    """The records written before the locks, as planned."""

    usage_record_ids: list[int | None]  # by first occurrence; None if not written
    charges: list[Charge]  # in the order sent, full shares
    totals: dict[int, RedemptionTotal]  # by voucher id
    id_range: tuple[int, int] | None = None  # the first and last usage record id written


def usage_batch_apply(*, batch_id: int) -> UsageBatch:
    """Apply a stored batch. Safe to call any number of times: the batch row is locked
    first, so two workers never apply one batch at once, and its status is committed
    with the charges, so a batch applied again finds itself done and changes nothing."""
    start = time.perf_counter()
    with transaction.atomic():
        # Results are read only when asked for (deferred): 600 kB for a full batch.
        batch = UsageBatch.objects.select_for_update().defer("results_json").get(pk=batch_id)
        if batch.status in (BatchStatus.DONE, BatchStatus.FAILED):
            return batch
        _apply(batch)
        batch.refresh_from_db(fields=["status", "accepted", "duplicate", "rejected", "finished_at"])
    # Committed: counted once, however often the batch's task runs.
    batch_applied(batch, seconds=time.perf_counter() - start)
    return batch


def _apply(batch: UsageBatch) -> None:
    data_center_id = batch.data_center_id
    try:
        staged = stage(body_records(batch.body), batch.created_at)
    except Inexact:
        staged = stage(body_records(batch.body, exact=True), batch.created_at)
    # Before any lock, so that workers do this in parallel: look up the vouchers, their
    # terms and redemptions, the record_ids sent before; plan; write the records.
    voucher_ids = registered_vouchers(data_center_id, staged.voucher_codes)
    terms = voucher_charge_terms(voucher_ids.values())
    redemptions = active_redemptions(data_center_id, terms)
    # Most batches bring only new record_ids: the first attempt does not look for the
    # others, the unique index finds them (waiting for a batch that is writing the same
    # ones until it commits). Then the records sent before are looked up, and the batch
    # planned again.
    stored: dict[str, StoredRecord] = {}
    for attempt in itertools.count():
        try:
            with transaction.atomic():
                if attempt:
                    names = [o.record.record_id for o in staged.first_occurrences]
                    stored = stored_records(data_center_id, names)
                plans = plan(staged, stored, voucher_ids, terms, redemptions)
                written = _write_records(batch, staged, plans)
            break
        except UniqueViolation as error:  # from COPY, which Django does not wrap
            if attempt >= 5 or error.diag.constraint_name != KEY_CONSTRAINT:
                raise
    # The plan's results, written before the locks: they stand unless `_charge` finds
    # that something changed meanwhile, and then it writes them again.
    _finish(batch, results(staged, plans))
    # The cheap integrity checks (price band, plan), before the locks too.
    flagged = batch_flags(occurrences=staged.first_occurrences, plans=plans, terms=terms)
    final = _charge(batch, staged, plans, written)
    # Last, as the rollups' shared rows are (compute/rollups.py): the dashboards' sums.
    program_days, companies = usage_sums(staged, plans, final, terms)
    rollups_add_batch(
        batch_id=batch.pk,
        data_center_id=data_center_id,
        program_days=program_days,
        companies=companies,
    )
    # What they flagged and was accepted in the end: findings (and holds).
    batch_raise(
        flagged,
        batch_id=batch.pk,
        data_center_id=data_center_id,
        occurrences=staged.first_occurrences,
        final=final,
        usage_record_ids=written.usage_record_ids,
        terms=terms,
    )


def _write_records(batch: UsageBatch, staged: Staged, plans: list[Plan]) -> Written:
    """COPY the records planned as accepted, with their full share as covered amount,
    and line up their charges as if every voucher can pay them all. Written in
    record_id order, so that two batches sharing record_ids wait for each other in
    one order and cannot deadlock. Runs for every record of every batch: tuples are
    unpacked, not read by attribute, and named tuples built from ready tuples in C."""
    planned = [k for k, p in enumerate(plans) if p.outcome == Outcome.ACCEPTED]
    written = Written([None] * len(plans), [], {})
    if not planned:
        return written
    _now, ids = new_ids("compute_usagerecord", len(planned))
    written.id_range = (ids[0], ids[-1])  # increasing: one range of the sequence
    records = [o.record for o in staged.first_occurrences]
    names = [r.record_id for r in records]
    usage_record_ids = written.usage_record_ids
    order = sorted(planned, key=names.__getitem__)
    for k, usage_record_id in zip(order, ids, strict=True):
        usage_record_ids[k] = usage_record_id
    # The keys first (compute/ingest/keys.py): a record_id sent before fails here.
    keys = [(names[k], pk, records[k].ended_at) for k, pk in zip(order, ids, strict=True)]
    keys_copy(batch.data_center_id, keys)

    def copy_lines(rows: list[RecordFields]) -> list[str]:
        head = f"{batch.data_center_id}\t"
        tail = f"\t{batch.pk}\t"
        lines: list[str] = []
        append = lines.append
        for k in order:
            _outcome, share, voucher_id, redemption_id = plans[k]
            record_id, _code, started_at, ended_at, resource, domestic, quantity, amount, _e = rows[
                k
            ]
            append(  # in the column order of _RECORDS_COPY
                f"{head}{record_id}{tail}{started_at}\t{ended_at}\t{resource}\t"
                f"{'t' if domestic else 'f'}\t{quantity}\t{amount}\t"
                f"{usage_record_ids[k]}\t{voucher_id}\t{redemption_id}\t{share}\n"
            )
        return lines

    # Validated fields never need escaping: checked on what is sent, in a few passes
    # over the whole text; if it is not so after all, every text field is escaped.
    text = "".join(copy_lines(records))
    if not copy_lines_plain(text, lines=len(order), columns=_RECORDS_COPY_COLUMNS):
        text = "".join(copy_lines([_copy_escaped(r) for r in records]))
    copy_rows(_RECORDS_COPY, text)
    charges = written.charges
    append_charge = charges.append
    sums: dict[int, Decimal] = {}
    redemption_of: dict[int, int] = {}
    for k in planned:
        _outcome, share, voucher_id, redemption_id = plans[k]
        assert share is not None  # planned as accepted: has its share
        if share:
            append_charge(_charge_of((voucher_id, share, usage_record_ids[k], names[k])))
        earlier = sums.get(voucher_id)
        if earlier is None:
            sums[voucher_id] = share
            redemption_of[voucher_id] = redemption_id
        else:
            sums[voucher_id] = earlier + share
    written.totals = {v: RedemptionTotal(redemption_of[v], total) for v, total in sums.items()}
    return written


def _copy_escaped(record: RecordFields) -> RecordFields:
    return record._replace(
        record_id=copy_text(record.record_id),
        started_at=copy_text(record.started_at),
        ended_at=copy_text(record.ended_at),
        resource=copy_text(record.resource),
        quantity=copy_text(record.quantity),
        amount=copy_text(record.amount),
    )


def _vouchers_stand(written: Written, balances: dict[int, tuple[str, Decimal]]) -> bool:
    """Whether, with the vouchers locked, each is still active and its balance enough
    for all its records' full shares. Usually so: then nothing is decided again record
    by record."""
    for voucher_id, (_redemption_id, total) in written.totals.items():
        state = balances.get(voucher_id)
        if state is None or state[0] in INACTIVE or total > state[1]:
            return False
    return True


_REDEMPTIONS_ADD = (
    "UPDATE compute_redemption AS r"
    " SET covered_total = r.covered_total + t.total, updated_at = now()"
    " FROM unnest(string_to_array(%s, E'\\n')::bigint[],"
    " string_to_array(%s, E'\\n')::numeric[]) AS t(id, total) WHERE r.id = t.id"
)


def _redemptions_take(written: Written) -> bool:
    """Add the planned totals to the redemptions, if each is still the active one and
    its cap left is enough; if not, change nothing and say so. One statement that locks
    and checks and writes, where locking first (`active_redemptions(lock=True)`) and
    updating after took two passes over the same rows. The vouchers are locked already,
    so the order the rows are taken in cannot deadlock: every other writer of several
    redemptions holds their vouchers first, and the others (accept, close, void) hold
    one redemption and take nothing after it.

    What one redemption's failure leaves is taken back by a second UPDATE, not by a
    savepoint: rows updated in a subtransaction lost their in-page (HOT) updates in
    the benchmark (a third of the redemption updates then wrote all seven indexes)."""
    totals = sorted(written.totals.values())
    ids = sql_list(t.redemption_id for t in totals)
    amounts = sql_list(t.total for t in totals)
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
            cursor.execute(_REDEMPTIONS_ADD, [sql_list(taken), sql_list(-added[r] for r in taken)])
    return False


@dataclass(slots=True)
class Settlement:
    """What `settle` decides: each first occurrence's plan for good, the charges, and
    the written records to change ({usage record id: covered}, or None to delete)."""

    outcomes: list[Plan]
    charges: list[Charge]
    changes: dict[int, Decimal | None]


def settle(
    staged: Staged,
    plans: list[Plan],
    usage_record_ids: list[int | None],
    balances: dict[int, tuple[str, Decimal]],
    redemptions: dict[int, ActiveRedemption],
) -> Settlement:
    """docs/api.md's rules, for good, with the vouchers and redemptions locked: `covered =
    min(share, balance left, cap left)`, balance and cap shrinking as records are
    accepted in the order sent."""
    balance = {v: b for v, (status, b) in balances.items() if status not in INACTIVE}
    cap_left = {v: redemption.cap_left for v, redemption in redemptions.items()}
    decided = Settlement([], [], {})
    for k, (occurrence, planned) in enumerate(zip(staged.first_occurrences, plans, strict=True)):
        if planned.outcome != Outcome.ACCEPTED:
            decided.outcomes.append(planned)
            continue
        _outcome, share, voucher_id, redemption_id = planned
        usage_record_id = usage_record_ids[k]
        assert usage_record_id is not None  # every accepted plan was written
        locked = redemptions.get(voucher_id)
        if locked is None or locked.id != redemption_id:
            decided.outcomes.append(Plan(Outcome.NOT_AUTHORIZED))
            decided.changes[usage_record_id] = None
            continue
        left = balance.get(voucher_id)
        if left is None:
            decided.outcomes.append(Plan(Outcome.VOUCHER_INACTIVE))
            decided.changes[usage_record_id] = None
            continue
        assert share is not None
        covered = share if share <= left else left
        cap = cap_left[voucher_id]
        if cap is not None:
            if covered > cap:
                covered = cap
            cap_left[voucher_id] = cap - covered
        balance[voucher_id] = left - covered
        decided.outcomes.append(Plan(Outcome.ACCEPTED, covered))
        if covered != share:
            decided.changes[usage_record_id] = covered
        if covered:
            decided.charges.append(
                Charge(voucher_id, covered, usage_record_id, occurrence.record.record_id)
            )
    return decided


def _charge(batch: UsageBatch, staged: Staged, plans: list[Plan], written: Written) -> list[Plan]:
    """Under the locks: lock the vouchers; when the plan stands (`_vouchers_stand`,
    `_redemptions_take`), write its charges; if not, lock the redemptions, settle every
    record again and write what that decides, results included. Returns each first
    occurrence's outcome as settled."""
    data_center_id = batch.data_center_id
    balances = vouchers_lock(written.totals)
    actor_label = f"data center #{data_center_id}"
    left = {voucher_id: balance for voucher_id, (_s, balance) in balances.items()}
    if _vouchers_stand(written, balances) and _redemptions_take(written):
        ledger_charge_many(balances=left, charges=written.charges, actor_label=actor_label)
        return plans
    redemptions = active_redemptions(data_center_id, balances, lock=True)
    decided = settle(staged, plans, written.usage_record_ids, balances, redemptions)
    totals: dict[int, Decimal] = {}
    redemption_of = {voucher_id: r.id for voucher_id, r in redemptions.items()}
    for charge in decided.charges:
        redemption_id = redemption_of[charge.voucher_id]
        totals[redemption_id] = totals.get(redemption_id, Decimal(0)) + charge.amount
    ledger_charge_many(balances=left, charges=decided.charges, actor_label=actor_label)
    with connection.cursor() as cursor:
        if decided.changes:
            removed = [rec for rec, covered in decided.changes.items() if covered is None]
            cursor.execute(RECORDS_DELETE, [sql_list(removed)])
            reduced = {
                rec: covered for rec, covered in decided.changes.items() if covered is not None
            }
            cursor.execute(
                "UPDATE compute_usagerecord AS u SET covered_amount = t.covered"
                " FROM unnest(string_to_array(%s, E'\\n')::bigint[],"
                " string_to_array(%s, E'\\n')::numeric[]) AS t(id, covered) WHERE u.id = t.id",
                [sql_list(reduced), sql_list(reduced.values())],
            )
        cursor.execute(_REDEMPTIONS_ADD, [sql_list(totals), sql_list(totals.values())])
    _finish(batch, results(staged, decided.outcomes))
    return decided.outcomes


def _finish(batch: UsageBatch, outcome: Results) -> None:
    """Mark the batch done with its results (committed with the charges)."""
    execute_bound(
        "UPDATE compute_usagebatch SET status = %s, results_json = %s, accepted = %s,"
        " duplicate = %s, rejected = %s, finished_at = now() WHERE id = %s",
        [BatchStatus.DONE.value, *outcome, batch.pk],
    )
