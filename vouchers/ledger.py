"""The voucher ledger: every yuan that moves on a voucher moves here.

Rules kept by every function in this module:
- each change is a new `LedgerEntry` (PostgreSQL refuses UPDATE/DELETE on entries);
- `Voucher.balance` is updated in the same transaction as its entries;
- a voucher is changed only while its row is locked (`SELECT … FOR UPDATE`), and when
  several are locked at once they are locked in ascending id order, so concurrent
  writers can neither overspend nor deadlock;
- a program's `allocated` is changed only under the program row's lock, so concurrent
  approvals can never exceed its budget.

Lock order, whenever more than one kind is held: program → vouchers (ascending id) →
compute's redemptions (ascending id; usage ingestion's fast path updates a batch's
redemptions in one statement, which cannot deadlock because it holds their vouchers
first: see `compute.ingest.apply._redemptions_take`).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from portal.audit import SYSTEM, Actor, actor_name, actor_user, audit_record
from portal.db import copy_rows, copy_text, new_ids, sql_list
from portal.errors import DomainError
from portal.locks import retry_on_deadlock
from portal.models import Role, User
from portal.tenancy import has_role
from vouchers.ledger_chain import GENESIS, constant_part, current_sealer, message

# The checks live in vouchers.ledger_checks; their names stay importable from here.
from vouchers.ledger_checks import LedgerMismatch as LedgerMismatch
from vouchers.ledger_checks import ledger_check_register as ledger_check_register
from vouchers.ledger_checks import ledger_verify as ledger_verify
from vouchers.models import (
    ZERO,
    Company,
    EntryKind,
    LedgerEntry,
    Program,
    Voucher,
    VoucherStatus,
)
from vouchers.signals import voucher_status_changed

CENT = Decimal("0.01")

# Voucher codes: no 0/O, 1/I/L, so a code read over the phone cannot be misheard.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def _check_character(body: str) -> str:
    """Weighted sum modulo 31 over the random part: any single wrong or two swapped
    neighbouring characters give another check character."""
    n = len(CODE_ALPHABET)
    total = sum((i + 1) * CODE_ALPHABET.index(ch) for i, ch in enumerate(body))
    return CODE_ALPHABET[total % n]


def voucher_code_new(*, city_code: str, year: int) -> str:
    """`SH-26-7K3M-9QXD`: city prefix, year, 7 random characters (31⁷ ≈ 2.8·10¹⁰ from
    `secrets`, so unguessable), and a check character."""
    body = "".join(secrets.choice(CODE_ALPHABET) for _ in range(7))
    full = body + _check_character(body)
    return f"{city_code}-{year % 100:02d}-{full[:4]}-{full[4:]}"


def voucher_code_is_well_formed(code: str) -> bool:
    parts = code.split("-")
    if len(parts) != 4 or len(parts[2]) != 4 or len(parts[3]) != 4:
        return False
    body = parts[2] + parts[3]
    if any(ch not in CODE_ALPHABET for ch in body):
        return False
    return _check_character(body[:7]) == body[7]


def _add_months(day: date, months: int) -> date:
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    # Clamp to the month's last day (31 Jan + 1 month = 28/29 Feb).
    for candidate in (31, 30, 29, 28):
        try:
            return date(year, month, min(day.day, candidate))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def _post(
    voucher: Voucher,
    *,
    kind: str,
    amount: Decimal,
    actor: Actor,
    actor_label: str = "",
    memo: str = "",
    usage_record_id: int | None = None,
) -> LedgerEntry:
    """Append one entry to a voucher the caller has locked, sealed onto its chain, and
    update its cached balance and chain head."""
    assert connection.in_atomic_block, "ledger entries are written inside a transaction"
    balance = voucher.balance + amount
    if balance < 0:
        raise DomainError(_("The voucher's balance cannot go below zero."), code="conflict")
    # The id and time first: both are sealed in the mac.
    _now, (entry_id,) = new_ids("vouchers_ledgerentry", 1)
    now = timezone.now()
    user, label, memo = actor_user(actor), actor_name(actor, actor_label), memo[:300]
    key_id, sealer = current_sealer()
    constant = constant_part(
        actor_id=user.pk if user else None,
        created_at=now,
        key_id=key_id,
        kind=kind,
        actor_label=label,
    )
    mac = sealer(
        message(
            entry_id=entry_id,
            voucher_id=voucher.pk,
            prev=voucher.ledger_head or GENESIS,
            amount=amount,
            balance_after=balance,
            usage_record_id=usage_record_id,
            constant=constant,
            memo=memo,
        )
    )
    entry = LedgerEntry.objects.create(
        id=entry_id,
        voucher=voucher,
        kind=kind,
        amount=amount,
        balance_after=balance,
        actor=user,
        actor_label=label,
        memo=memo,
        usage_record_id=usage_record_id,
        created_at=now,
        key_id=key_id,
        mac=mac,
    )
    voucher.ledger_head = mac
    voucher.balance = balance
    fields = ["balance", "ledger_head", "updated_at"]
    if voucher.status == VoucherStatus.ACTIVE and balance == 0 and kind == EntryKind.CHARGE:
        voucher.status = VoucherStatus.EXHAUSTED
        fields.append("status")
    elif voucher.status == VoucherStatus.EXHAUSTED and balance > 0:
        voucher.status = VoucherStatus.ACTIVE
        fields.append("status")
    voucher.save(update_fields=fields)
    return entry


@retry_on_deadlock()
def voucher_issue(
    *,
    program: Program,
    company: Company,
    amount: Decimal,
    actor: Actor,
    valid_from: date | None = None,
    memo: str = "",
    from_reserve: bool = False,
) -> Voucher:
    """Allocate `amount` from the program's budget and issue a voucher worth it.

    Callers (the approval service) run this inside their own transaction; the program
    row is locked here, so concurrent approvals see each other's allocations and the
    budget can never be exceeded. `from_reserve`: the amount was reserved when the award
    was made (`award_reserve`) and moves from `reserved` to `allocated` now that the
    company accepted it.
    """
    amount = Decimal(amount).quantize(CENT)
    if amount <= 0:
        raise DomainError(_("A voucher must be worth more than zero."), code="invalid")
    with transaction.atomic():
        locked = Program.objects.select_for_update().get(pk=program.pk)
        if from_reserve:
            if amount > locked.reserved:  # pragma: no cover - verify_ledger's invariant
                raise DomainError(_("The award is no longer reserved."), code="conflict")
            Program.objects.filter(pk=locked.pk).update(
                allocated=F("allocated") + amount, reserved=F("reserved") - amount
            )
            locked.reserved -= amount
        elif amount > locked.budget_remaining:
            raise DomainError(
                _("The program's remaining budget (¥%(left)s) cannot cover ¥%(amount)s.")
                % {"left": f"{locked.budget_remaining:,.2f}", "amount": f"{amount:,.2f}"},
                code="conflict",
            )
        else:
            Program.objects.filter(pk=locked.pk).update(allocated=F("allocated") + amount)
        locked.allocated += amount
        program.allocated, program.reserved = locked.allocated, locked.reserved
        start = valid_from or timezone.localdate()
        until = _add_months(start, locked.validity_months) - timedelta(days=1)
        code = voucher_code_new(city_code=locked.city.code, year=start.year)
        while Voucher.objects.filter(code=code).exists():  # pragma: no cover - 1 in 10¹⁰
            code = voucher_code_new(city_code=locked.city.code, year=start.year)
        voucher = Voucher.objects.create(
            code=code,
            city_id=locked.city_id,
            program=locked,
            company=company,
            face_value=amount,
            balance=ZERO,
            valid_from=start,
            valid_until=until,
        )
        _post(voucher, kind=EntryKind.ISSUE, amount=amount, actor=actor, memo=memo)
        # Its outcome reports, due when the program says (imported here: the workflow
        # module reads this one's month arithmetic).
        from vouchers.outcomes import outcome_reports_schedule

        outcome_reports_schedule(voucher=voucher)
        audit_record(
            action="voucher.issue",
            city=locked.city,
            actor=actor,
            target=voucher,
            data={"code": code, "amount": str(amount), "program": locked.pk},
        )
    return voucher


def award_reserve(*, program: Program, amount: Decimal) -> Program:
    """Hold `amount` of the program's budget back for an award the company has yet to
    accept, under the program row's lock (as `voucher_issue`), so reserved and allocated
    together never pass the budget. The caller's transaction writes the audit event."""
    assert connection.in_atomic_block, "reservations are made inside a transaction"
    locked = Program.objects.select_for_update().get(pk=program.pk)
    if amount > locked.budget_remaining:
        raise DomainError(
            _("The program's remaining budget (¥%(left)s) cannot cover ¥%(amount)s.")
            % {"left": f"{locked.budget_remaining:,.2f}", "amount": f"{amount:,.2f}"},
            code="conflict",
        )
    Program.objects.filter(pk=locked.pk).update(reserved=F("reserved") + amount)
    locked.reserved += amount
    program.reserved = locked.reserved
    return locked


def award_release(*, program: Program, amount: Decimal) -> Program:
    """Give a declined or lapsed award's reservation back to the program's budget."""
    assert connection.in_atomic_block, "reservations are released inside a transaction"
    locked = Program.objects.select_for_update().get(pk=program.pk)
    Program.objects.filter(pk=locked.pk).update(reserved=F("reserved") - amount)
    locked.reserved -= amount
    program.reserved = locked.reserved
    return locked


def _require_manager(*, voucher: Voucher, actor: User) -> None:
    if not has_role(actor, voucher.city, Role.PROGRAM_MANAGER):
        raise DomainError(
            _("Only the city's program managers may change a voucher's status."),
            code="forbidden",
        )


def _locked(voucher: Voucher) -> Voucher:
    # The voucher's row only (portal/locks.py): its city row stays free for the foreign
    # key of every audit event of the city, which another transaction may be writing.
    return Voucher.objects.select_for_update(of=("self",)).select_related("city").get(pk=voucher.pk)


def _require_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise DomainError(
            _("Give a reason."), code="invalid", fields={"reason": [_("Give a reason.")]}
        )
    return reason[:300]


@retry_on_deadlock()
def voucher_suspend(*, voucher: Voucher, actor: User, reason: str) -> Voucher:
    """Stop charges on a voucher until it is resumed; the balance stays."""
    _require_manager(voucher=voucher, actor=actor)
    reason = _require_reason(reason)
    with transaction.atomic():
        locked = _locked(voucher)
        if locked.status not in (VoucherStatus.ACTIVE, VoucherStatus.EXHAUSTED):
            raise DomainError(_("Only an active voucher can be suspended."), code="conflict")
        locked.status, locked.status_reason = VoucherStatus.SUSPENDED, reason
        locked.save(update_fields=["status", "status_reason", "updated_at"])
        voucher_status_changed.send(sender=Voucher, voucher=locked)
        audit_record(
            action="voucher.suspend",
            city=locked.city,
            actor=actor,
            target=locked,
            data={"reason": reason},
        )
    return locked


@retry_on_deadlock()
def voucher_resume(*, voucher: Voucher, actor: User, reason: str) -> Voucher:
    _require_manager(voucher=voucher, actor=actor)
    reason = _require_reason(reason)
    with transaction.atomic():
        locked = _locked(voucher)
        if locked.status != VoucherStatus.SUSPENDED:
            raise DomainError(_("Only a suspended voucher can be resumed."), code="conflict")
        locked.status = VoucherStatus.ACTIVE if locked.balance > 0 else VoucherStatus.EXHAUSTED
        locked.status_reason = reason
        locked.save(update_fields=["status", "status_reason", "updated_at"])
        voucher_status_changed.send(sender=Voucher, voucher=locked)
        audit_record(
            action="voucher.resume",
            city=locked.city,
            actor=actor,
            target=locked,
            data={"reason": reason},
        )
    return locked


def _return_remainder(locked: Voucher, *, kind: str, actor: Actor, memo: str) -> Decimal:
    """Take the remaining balance off the voucher and give it back to the program."""
    remainder: Decimal = locked.balance
    if remainder > 0:
        # Lock order: program before voucher would be the rule, but the voucher is
        # already ours; the program row is only ever locked briefly by issuers, which
        # never wait for a voucher, so this cannot deadlock.
        Program.objects.filter(pk=locked.program_id).update(allocated=F("allocated") - remainder)
        _post(locked, kind=kind, amount=-remainder, actor=actor, memo=memo)
    return remainder


@retry_on_deadlock()
def voucher_revoke(*, voucher: Voucher, actor: User, reason: str) -> Voucher:
    """End a voucher for good; its remaining balance returns to the program budget."""
    _require_manager(voucher=voucher, actor=actor)
    reason = _require_reason(reason)
    with transaction.atomic():
        locked = _locked(voucher)
        if locked.status in (VoucherStatus.REVOKED, VoucherStatus.EXPIRED):
            raise DomainError(_("This voucher has already ended."), code="conflict")
        returned = _return_remainder(locked, kind=EntryKind.REVOKE, actor=actor, memo=reason)
        locked.status, locked.status_reason = VoucherStatus.REVOKED, reason
        locked.save(update_fields=["status", "status_reason", "updated_at"])
        voucher_status_changed.send(sender=Voucher, voucher=locked)
        audit_record(
            action="voucher.revoke",
            city=locked.city,
            actor=actor,
            target=locked,
            data={"reason": reason, "returned": str(returned)},
        )
    return locked


@retry_on_deadlock()
def voucher_expire(*, voucher: Voucher) -> Voucher:
    """Expire a voucher past its validity and grace days (called by the periodic job)."""
    with transaction.atomic():
        locked = _locked(voucher)
        if locked.status in (VoucherStatus.REVOKED, VoucherStatus.EXPIRED):
            return locked
        returned = _return_remainder(
            locked, kind=EntryKind.EXPIRE, actor=SYSTEM, memo="validity and grace days ended"
        )
        locked.status = VoucherStatus.EXPIRED
        locked.save(update_fields=["status", "updated_at"])
        voucher_status_changed.send(sender=Voucher, voucher=locked)
        audit_record(
            action="voucher.expire",
            city=locked.city,
            target=locked,
            data={"returned": str(returned)},
        )
    return locked


def ledger_reverse(
    *, voucher_id: int, amount: Decimal, usage_record_id: int | None, actor_label: str, memo: str
) -> LedgerEntry:
    """Give a charged amount back to the voucher (a voided usage record).

    On a voucher that has already ended (revoked or expired) the money cannot be spent
    any more, so it goes straight on to the program budget with a second entry.
    """
    with transaction.atomic():
        locked = Voucher.objects.select_for_update().get(pk=voucher_id)
        entry = _post(
            locked,
            kind=EntryKind.REVERSAL,
            amount=amount,
            actor=SYSTEM,
            actor_label=actor_label,
            memo=memo,
            usage_record_id=usage_record_id,
        )
        if locked.status in (VoucherStatus.REVOKED, VoucherStatus.EXPIRED):
            kind = EntryKind.REVOKE if locked.status == VoucherStatus.REVOKED else EntryKind.EXPIRE
            _return_remainder(locked, kind=kind, actor=SYSTEM, memo=memo)
    return entry


# --- bulk charging, for usage ingestion ------------------------------------------------


class ChargeTerms(NamedTuple):
    """The terms a voucher is charged on. Fixed at issue, but for the program's rates
    and grace days (and the city's time zone), which are not guarded by the voucher's
    lock: usage ingestion reads them before taking it. A tuple: one is read for each
    voucher a batch names."""

    voucher_id: int
    valid_from: date
    grace_until: date  # valid_until plus the program's grace days
    timezone: str  # the city's: the voucher is valid from valid_from 00:00 there until
    # the day after grace_until, 00:00 there
    rate_domestic: Decimal
    rate_other: Decimal
    program_id: int  # fixed at issue, like the company: usage ingestion sums by them
    company_id: int


def voucher_charge_terms(voucher_ids: Iterable[int]) -> dict[int, ChargeTerms]:
    """The charging terms of the given vouchers, by id (no lock)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT v.id, v.valid_from, v.valid_until + p.grace_days, c.timezone,
                   p.rate_domestic, p.rate_other, v.program_id, v.company_id
            FROM vouchers_voucher v
            JOIN vouchers_program p ON p.id = v.program_id
            JOIN portal_city c ON c.id = v.city_id
            WHERE v.id = ANY(string_to_array(%s, E'\\n')::bigint[])
            """,
            [sql_list(voucher_ids)],
        )
        return {row[0]: ChargeTerms(*row) for row in cursor.fetchall()}


def vouchers_lock(voucher_ids: Iterable[int]) -> dict[int, tuple[str, Decimal]]:
    """Lock the given vouchers in ascending id order; return (status, balance) of those
    that exist, by id. The fixed order is what keeps concurrent batches that touch
    overlapping vouchers from deadlocking: every locker queues behind the same row."""
    assert connection.in_atomic_block, "locks are held until the transaction ends"
    ids = sorted(set(voucher_ids))
    if not ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, status, balance FROM vouchers_voucher"
            " WHERE id = ANY(string_to_array(%s, E'\\n')::bigint[]) ORDER BY id FOR UPDATE",
            [sql_list(ids)],
        )
        return {row[0]: (row[1], row[2]) for row in cursor.fetchall()}


def ledger_charge_many(
    *,
    balances: dict[int, Decimal],
    charges: Sequence[tuple[int, Decimal, int, str]],
    actor_label: str,
) -> tuple[datetime, list[int]]:
    """Post one charge entry per `(voucher_id, amount, usage_record_id, memo)`, in that
    order, on vouchers locked by `vouchers_lock` (`balances`: what it returned, by id);
    return the entries' time (`created_at`: the time the vouchers' chain heads were read,
    after the batch's records were written) and their ids.

    Usage ingestion posts thousands at a time: the entries go in by one COPY and the
    balances by one UPDATE. Ids are taken here, under the vouchers' locks, so that a
    voucher's entries in id order are its history (`ledger_verify` relies on it). A
    charge above what is left is a bug of the caller: it raises before anything is
    written (and the CHECK constraints would refuse it too)."""
    assert connection.in_atomic_block, "ledger entries are written inside a transaction"
    if not charges:
        return timezone.now(), []
    _now, ids = new_ids("vouchers_ledgerentry", len(charges))
    # Each entry is sealed onto its voucher's chain (vouchers/ledger_chain.py): the
    # heads are read here, under the vouchers' locks, and written with the balances.
    # So is the entries' time, sealed too: the statement's (after the batch's records).
    # One row: the time once and the heads as one text ("id:head,…"), not a row and a
    # timestamp to convert per voucher (~2 ms a batch of 1,000 vouchers).
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement_timestamp(), string_agg(id::text || ':' || ledger_head, ',')"
            " FROM vouchers_voucher WHERE id = ANY(string_to_array(%s, E'\\n')::bigint[])",
            [sql_list(balances)],
        )
        at, pairs = cursor.fetchone()
    heads: dict[int, str] = {}
    for pair in pairs.split(",") if pairs else ():
        voucher_id, _colon, head = pair.partition(":")
        heads[int(voucher_id)] = head or GENESIS
    stamp = at.isoformat()
    key_id, sealer = current_sealer()
    # What every entry's message begins with, hashed once for the batch.
    seal = sealer.after(
        constant_part(
            actor_id=None,
            created_at=at,
            key_id=key_id,
            kind=EntryKind.CHARGE,
            actor_label=actor_label,
        )
    )
    inner_copy, outer_copy = seal.hash_copiers()
    label = copy_text(actor_label)
    left = {voucher_id: balance.quantize(CENT) for voucher_id, balance in balances.items()}
    lines: list[str] = []
    append = lines.append
    zero = Decimal(0)
    memos = "".join([memo for _v, _a, _r, memo in charges])
    escape = copy_text if copy_text(memos) != memos else str  # usually none needs it
    for entry_id, (voucher_id, amount, record_id, memo) in zip(ids, charges, strict=True):
        text = str(amount)
        if text[-3:-2] != ".":  # sealed as stored: with two places
            amount = amount.quantize(CENT)
            text = str(amount)
        balance = left[voucher_id] - amount
        if amount <= zero or balance < zero:
            raise ValueError(f"a charge of {amount} on voucher #{voucher_id} is not possible")
        left[voucher_id] = balance
        # The rest of vouchers.ledger_chain.message, and `Sealer.__call__`, inline:
        # once per usage record.
        inner = inner_copy()
        inner.update(
            f"{entry_id}|{voucher_id}|{heads[voucher_id]}|-{text}|{balance}|{record_id}|{memo}".encode()
        )
        outer = outer_copy()
        outer.update(inner.digest())
        mac = heads[voucher_id] = outer.hexdigest()
        append(
            f"{entry_id}\t{voucher_id}\tcharge\t-{text}\t{balance}\t{label}\t"
            f"{record_id}\t{escape(memo)}\t{stamp}\t{key_id}\t{mac}\n"
        )
    copy_rows(
        "COPY vouchers_ledgerentry (id, voucher_id, kind, amount, balance_after,"
        " actor_label, usage_record_id, memo, created_at, key_id, mac) FROM STDIN",
        "".join(lines),
    )
    with connection.cursor() as cursor:
        charged = [v for v in left if left[v] != balances[v]]
        cursor.execute(
            """
            UPDATE vouchers_voucher AS v
            SET balance = v.balance - t.total,
                status = CASE WHEN v.status = 'active' AND v.balance - t.total = 0
                              THEN 'exhausted' ELSE v.status END,
                ledger_head = t.head,
                updated_at = now()
            FROM unnest(string_to_array(%s, E'\\n')::bigint[],
                        string_to_array(%s, E'\\n')::numeric[],
                        string_to_array(%s, E'\\n')) AS t(id, total, head)
            WHERE v.id = t.id
            """,
            [
                sql_list(charged),
                sql_list(balances[v] - left[v] for v in charged),
                sql_list(heads[v] for v in charged),
            ],
        )
    return at, ids
