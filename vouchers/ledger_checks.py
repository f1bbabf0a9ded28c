"""Checking the ledger: every voucher's balance against its entries, entry by entry, and
each program's allocation (`manage.py verify_ledger`, the nightly reconciliation).
`vouchers.ledger` re-exports `ledger_verify`, `LedgerMismatch` and
`ledger_check_register`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection
from django.db.models import Count, Max, Q, Sum

from portal.models import User
from vouchers.ledger_chain import ENTRY_COLUMNS, KEYED_CHAIN, chains_check
from vouchers.models import ZERO, ApplicationState, EntryKind, LedgerEntry, Program, Voucher


@dataclass(frozen=True)
class LedgerMismatch:
    code: str
    cached: Decimal
    derived: Decimal
    reason: str
    # Says what the two figures are, where "cached" and "from entries" would not.
    figures: str = ""

    def describe(self) -> str:
        figures = self.figures or f"cached ¥{self.cached}, from entries ¥{self.derived}"
        return f"{self.code}: {self.reason} ({figures})"


# Checks a later app adds (compute: every charge and reversal against its usage record),
# from its AppConfig.ready(); `ledger_verify` runs them after its own.
ledger_checks: list[Callable[[], list[LedgerMismatch]]] = []


def ledger_check_register(check: Callable[[], list[LedgerMismatch]]) -> None:
    if check not in ledger_checks:
        ledger_checks.append(check)


def ledger_verify() -> list[LedgerMismatch]:
    """Recompute every voucher's balance from its entries, in one aggregate query; walk
    every voucher's `balance_after` chain entry by entry, and its keyed chain (every
    entry's MAC, `vouchers.ledger_chain`); check that manual adjustments
    carry an actor, a reason and their audit event; then the checks later apps add
    (`ledger_checks`). Each is one set-wise SQL statement, so it scales with the table,
    but for the keyed chain: one pass over the table in Python (the key never goes to
    the database)."""
    problems: list[LedgerMismatch] = []
    rows = Voucher.objects.annotate(
        derived=Sum("entries__amount"),
        entry_count=Count("entries"),
        issued=Sum("entries__amount", filter=Q(entries__kind=EntryKind.ISSUE)),
        last_id=Max("entries__id"),
    ).values_list("code", "balance", "face_value", "derived", "issued", "last_id")
    last_ids = [r[5] for r in rows if r[5] is not None]
    last_balance = dict(
        LedgerEntry.objects.filter(pk__in=last_ids).values_list("voucher__code", "balance_after")
    )
    for code, balance, face_value, derived, issued, _last in rows:
        derived = derived if derived is not None else ZERO
        if derived != balance:
            problems.append(
                LedgerMismatch(code, balance, derived, "balance differs from the sum of entries")
            )
        elif last_balance.get(code, ZERO) != balance:
            problems.append(
                LedgerMismatch(
                    code, balance, derived, "last entry's balance_after differs from balance"
                )
            )
        elif (issued or ZERO) != face_value:
            problems.append(
                LedgerMismatch(code, balance, derived, "issue entries differ from face value")
            )
    problems.extend(_programs_verify())
    problems.extend(_orphans_verify())
    problems.extend(_chains_verify())
    problems.extend(macs_verify())
    problems.extend(_adjustments_verify())
    for check in ledger_checks:
        problems.extend(check())
    return problems


# At most this many rows of one kind of problem are reported (a ledger broken wholesale
# says so in the first thousand).
REPORT_LIMIT = 1000


def _chains_verify() -> list[LedgerMismatch]:
    """Each voucher's entries in id order: every `balance_after` is the one before it
    plus the entry's amount (the first: its amount). The sums above cannot see an entry
    deleted, or inserted, with the balances patched to match; a broken link can. The
    first broken link of each voucher is reported (one window over the table, in the
    order of its (voucher, id) index)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT DISTINCT ON (e.voucher_id)
                   coalesce(v.code, '#' || e.voucher_id), e.id, e.balance_after,
                   coalesce(e.prev, 0) + e.amount
            FROM (
                SELECT id, voucher_id, amount, balance_after,
                       lag(balance_after) OVER (PARTITION BY voucher_id ORDER BY id) AS prev
                FROM vouchers_ledgerentry
            ) e
            LEFT JOIN vouchers_voucher v ON v.id = e.voucher_id
            WHERE e.balance_after <> coalesce(e.prev, 0) + e.amount
            ORDER BY e.voucher_id, e.id
            LIMIT %s
            """,
            [REPORT_LIMIT],
        )
        rows = cursor.fetchall()
    return [
        LedgerMismatch(
            code,
            stored,
            expected,
            f"entry {entry_id}: balance_after does not follow from the entry before it",
            figures=f"stored ¥{stored}, previous plus amount ¥{expected}",
        )
        for code, entry_id, stored, expected in rows
    ]


def macs_verify() -> list[LedgerMismatch]:
    """Every voucher's keyed chain (vouchers/ledger_chain.py), entry by entry in the
    order of the (voucher, id) index, streamed; and each voucher's `ledger_head` against
    its last entry. Two queries."""
    vouchers = {
        voucher_id: (code, head)
        for voucher_id, code, head in Voucher.objects.order_by().values_list(
            "id", "code", "ledger_head"
        )
    }
    entries = (
        LedgerEntry.objects.order_by("voucher_id", "id")
        .values_list(*(c.strip() for c in ENTRY_COLUMNS.split(",")))
        .iterator(chunk_size=5000)
    )
    heads = {voucher_id: head for voucher_id, (_code, head) in vouchers.items()}
    problems = []
    for voucher_id, entry_id, why in chains_check(entries, heads):
        where = f"entry {entry_id} breaks" if entry_id else "breaks"
        problems.append(
            LedgerMismatch(
                vouchers.get(voucher_id, (f"#{voucher_id}", ""))[0],
                ZERO,
                ZERO,
                f"{where} the voucher's {KEYED_CHAIN}: {why}",
                figures=f"voucher #{voucher_id}",
            )
        )
        if len(problems) >= REPORT_LIMIT:
            break
    return problems


def _adjustments_verify() -> list[LedgerMismatch]:
    """A manual adjustment names the person who made it (a user who exists), says why
    (its memo), and has its audit event (`ledger.adjust`, whose data names the entry).
    No service writes adjustments today, so any adjustment is worth a look; one missing
    any of the three was written around the code."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT coalesce(v.code, '#' || e.voucher_id), e.id, e.amount,
                   e.actor_id IS NULL OR u.id IS NULL, btrim(e.memo) = '',
                   NOT EXISTS (
                       SELECT 1 FROM portal_auditevent a
                       WHERE a.action = 'ledger.adjust'
                         AND a.target_type = 'vouchers.voucher'
                         AND a.target_id = e.voucher_id::text
                         AND a.data ->> 'entry' = e.id::text
                   )
            FROM vouchers_ledgerentry e
            LEFT JOIN vouchers_voucher v ON v.id = e.voucher_id
            LEFT JOIN portal_user u ON u.id = e.actor_id
            WHERE e.kind = %s
            ORDER BY e.id
            """,
            [EntryKind.ADJUST],
        )
        rows = cursor.fetchall()
    problems = []
    for code, entry_id, amount, no_actor, no_reason, no_event in rows:
        missing = [
            what
            for what, absent in (
                ("an actor", no_actor),
                ("a reason", no_reason),
                ("its audit event", no_event),
            )
            if absent
        ]
        if missing:
            problems.append(
                LedgerMismatch(
                    code,
                    amount,
                    amount,
                    f"adjustment entry {entry_id} lacks {', '.join(missing)}",
                    figures=f"amount ¥{amount}",
                )
            )
        if len(problems) >= REPORT_LIMIT:
            break
    return problems


def _orphans_verify() -> list[LedgerMismatch]:
    """Entries whose voucher or actor does not exist. Neither column carries a
    foreign-key constraint (see LedgerEntry), so this is where such an entry would show
    up."""
    orphans = (
        LedgerEntry.objects.exclude(voucher_id__in=Voucher.objects.values("pk"))
        .values("voucher_id")
        .annotate(total=Sum("amount"))
        .order_by("voucher_id")
    )
    problems = [
        LedgerMismatch(
            f"#{row['voucher_id']}", ZERO, row["total"], "entries name a voucher that is missing"
        )
        for row in orphans
    ]
    without_actor = (
        LedgerEntry.objects.filter(actor_id__isnull=False)
        .exclude(actor_id__in=User.objects.values("pk"))
        .values("voucher__code", "voucher__balance")
        .annotate(total=Sum("amount"))
        .order_by("voucher__code")
    )
    problems.extend(
        LedgerMismatch(
            row["voucher__code"] or "?",
            row["voucher__balance"] or ZERO,
            row["total"],
            "entries name an actor (user) that is missing",
        )
        for row in without_actor
    )
    return problems


def _programs_verify() -> list[LedgerMismatch]:
    """A program's `allocated` is derived too: what its vouchers were issued, less what
    revocation and expiry gave back (one aggregate query)."""
    rows = Program.objects.annotate(
        derived=Sum(
            "vouchers__entries__amount",
            filter=Q(
                vouchers__entries__kind__in=[EntryKind.ISSUE, EntryKind.REVOKE, EntryKind.EXPIRE]
            ),
        )
    ).values_list("city__slug", "slug", "allocated", "derived")
    return [
        LedgerMismatch(
            f"program {city}/{slug}",
            allocated,
            derived or ZERO,
            "allocated differs from issued less returned",
        )
        for city, slug, allocated, derived in rows
        if (derived or ZERO) != allocated
    ] + _reserved_verify()


def _reserved_verify() -> list[LedgerMismatch]:
    """A program's `reserved` is the sum of its awards awaiting acceptance (applications
    in state awarded): one aggregate query."""
    rows = Program.objects.annotate(
        derived=Sum(
            "applications__awarded_amount",
            filter=Q(applications__state=ApplicationState.AWARDED),
        )
    ).values_list("city__slug", "slug", "reserved", "derived")
    return [
        LedgerMismatch(
            f"program {city}/{slug}",
            reserved,
            derived or ZERO,
            "reserved differs from the awards awaiting acceptance",
            figures=f"reserved ¥{reserved}, awards awaiting acceptance ¥{derived or ZERO}",
        )
        for city, slug, reserved, derived in rows
        if (derived or ZERO) != reserved
    ]
