"""The ledger's keyed chain: every entry sealed with an HMAC-SHA-256, one chain per voucher.

Each entry's `mac` is an HMAC under the audit trail's key (`AUDIT_CHAIN_KEY`, from the
environment, never in the database; `portal.audit.chain_keys`) over every column that
carries meaning and the `mac` of the voucher's entry before it (the first: over
`GENESIS`). Whoever can write the table but lacks the key can neither edit, insert nor
delete an entry and re-seal the chain after it; `verify_ledger` walks every chain.

One chain per voucher, not one for the ledger: entries are written under the voucher's
row lock already (usage ingestion: thousands per batch, by COPY), so the chain needs no
lock of its own and concurrent batches on other vouchers never wait for each other. The
head of each chain (its last entry's mac) is kept on the voucher row, `ledger_head`,
read and written with the balance.

Key rotation is recorded in the chain: every entry names its key (`key_id`, the key's
fingerprint), and the first entry of a voucher written under a new key is sealed with
the new key over the last mac made with the old one. Keys may only move forward
(`AUDIT_CHAIN_KEY`, then `AUDIT_CHAIN_KEY_FALLBACKS` newest first): an entry sealed with
a key older than one its chain already used was written with a retired key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from portal.audit import chain_keys, current_key_id

GENESIS = "0" * 64
# Named in every problem this check reports (tests tell them from the others').
KEYED_CHAIN = "keyed chain"


def _fixed(value: Decimal | int | None) -> str:
    return "" if value is None else str(value)


def timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def constant_part(
    *, actor_id: int | None, created_at: datetime, key_id: str, kind: str, actor_label: str
) -> str:
    """The first part of the sealed message, which a bulk write shares between its
    entries (`Sealer.after` hashes it once). The free texts are length-prefixed (kind,
    actor label) or last (the memo, in `message`), so a message reads one way only."""
    return (
        f"{_fixed(actor_id)}|{timestamp(created_at)}|{key_id}|{len(kind)}:{kind!s}"
        f"|{len(actor_label)}:{actor_label}|"
    )


class Sealer:
    """HMAC-SHA-256 under one key, its padded key states computed once: an entry costs
    two hash-state copies (half of `hmac.digest`), which ingestion pays per record."""

    def __init__(self, key: bytes) -> None:
        block = hashlib.sha256(key).digest() if len(key) > 64 else key
        block = block.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def after(self, prefix: str) -> Sealer:
        """A sealer of messages that all begin with `prefix`, hashed once here:
        `sealer.after(p)(m) == sealer(p + m)`."""
        sealer = Sealer.__new__(Sealer)
        sealer._inner, sealer._outer = self._inner.copy(), self._outer
        sealer._inner.update(prefix.encode())
        return sealer

    def hash_copiers(self) -> tuple[Any, Any]:
        """The inner and outer states' `copy` methods, for a loop that inlines
        `__call__` (usage ingestion seals one entry per record)."""
        return self._inner.copy, self._outer.copy

    def __call__(self, message: str) -> str:
        inner = self._inner.copy()
        inner.update(message.encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


def message(*, entry_id: int, voucher_id: int, prev: str, amount: Decimal,
            balance_after: Decimal, usage_record_id: int | None, constant: str,
            memo: str) -> str:  # fmt: skip
    """What an entry's mac is computed over: its fields and its predecessor's mac (the
    amounts with two places, as the database gives them back)."""
    return (
        f"{constant}{entry_id}|{voucher_id}|{prev}|{amount:.2f}|{balance_after:.2f}"
        f"|{_fixed(usage_record_id)}|{memo}"
    )


def current_sealer() -> tuple[str, Sealer]:
    """The id of the key new entries are sealed with, and its sealer."""
    key_id = current_key_id()
    return key_id, Sealer(chain_keys()[key_id])


# --- verifying --------------------------------------------------------------------------

# An entry as `chains_check` reads it, in the order of these columns.
ENTRY_COLUMNS = (
    "id, voucher_id, kind, amount, balance_after, actor_id, actor_label, usage_record_id,"
    " memo, created_at, key_id, mac"
)


def key_ranks() -> dict[str, int]:
    """Each configured key's age: 0 the current key, then the fallbacks newest first."""
    ranks: dict[str, int] = {}
    for rank, key_id in enumerate(chain_keys()):
        ranks.setdefault(key_id, rank)
    return ranks


def chains_check(
    entries: Iterable[tuple], heads: dict[int, str]
) -> Iterator[tuple[int, int | None, str]]:
    """Walk `entries` (ENTRY_COLUMNS, ordered by voucher and id); yield (voucher id,
    entry id, why) for the first break of each voucher's chain, then for each voucher
    whose `ledger_head` (from `heads`) is not its last entry's mac."""
    sealers = {key_id: Sealer(key) for key_id, key in chain_keys().items()}
    ranks = key_ranks()
    voucher: int | None = None
    prev, rank, broken = GENESIS, 0, False
    last: dict[int, str | None] = {}  # by voucher: its last mac (None: its chain broke)
    for (entry_id, voucher_id, kind, amount, balance, actor_id, label, record_id, memo,
         created_at, key_id, mac) in entries:  # fmt: skip
        if voucher_id != voucher:
            if voucher is not None:
                last[voucher] = None if broken else prev
            voucher, prev, rank, broken = voucher_id, GENESIS, 0, False
        if broken:
            continue
        why = ""
        if not mac:
            why = "it is not sealed (no MAC): written around the ledger's code"
        elif key_id not in sealers:
            why = (
                f"it is sealed with key {key_id or '(none)'}, which is not configured "
                "(AUDIT_CHAIN_KEY, AUDIT_CHAIN_KEY_FALLBACKS)"
            )
        elif ranks[key_id] > rank and prev != GENESIS:
            why = f"it is sealed with key {key_id}, older than the key of the entry before it"
        else:
            constant = constant_part(
                actor_id=actor_id, created_at=created_at, key_id=key_id, kind=kind,
                actor_label=label,
            )  # fmt: skip
            expected = sealers[key_id](
                message(
                    entry_id=entry_id, voucher_id=voucher_id, prev=prev, amount=amount,
                    balance_after=balance, usage_record_id=record_id, constant=constant,
                    memo=memo,
                )
            )  # fmt: skip
            if not hmac.compare_digest(expected, mac):
                why = (
                    "its MAC does not match: it was changed, an entry before it deleted or "
                    "inserted, or it was sealed again without the key"
                )
        if why:
            broken = True
            yield voucher_id, entry_id, why
            continue
        prev, rank = mac, ranks[key_id]
    if voucher is not None:
        last[voucher] = None if broken else prev
    for voucher_id, head in heads.items():
        if voucher_id not in last:
            if head:
                yield (
                    voucher_id,
                    None,
                    (
                        "the voucher's chain has a head but no entries: they were deleted or "
                        "the table truncated"
                    ),
                )
        elif last[voucher_id] is not None and last[voucher_id] != head:
            yield (
                voucher_id,
                None,
                (
                    "the voucher's chain head is not its last entry's MAC: its newest entries "
                    "were deleted, or entries added around the ledger's code"
                ),
            )


# --- sealing what was written before the chain --------------------------------------------


def ledger_seal_existing(connection: Any) -> int:
    """Seal every entry that has no mac yet onto its voucher's chain, and set every
    voucher's `ledger_head`; return how many were sealed. For the migration that added
    the chain (vouchers 0015): it runs as the tables' owner, which alone may switch the
    append-only trigger off, inside the migration's transaction (the ALTER TABLE locks
    the ledger until it commits, so nothing is written meanwhile). Streams the table in
    the (voucher, id) index's order; the macs go back by COPY and one UPDATE."""
    key_id, sealer = current_sealer()
    sealed: list[str] = []
    last: dict[int, str] = {}
    raw = connection.connection
    with raw.cursor(name="ledger_seal") as entries:
        entries.itersize = 5000
        entries.execute(
            f"SELECT {ENTRY_COLUMNS} FROM vouchers_ledgerentry ORDER BY voucher_id, id"  # noqa: S608
        )
        for (entry_id, voucher_id, kind, amount, balance, actor_id, label, record_id, memo,
             created_at, _key, mac) in entries:  # fmt: skip
            if not mac:
                constant = constant_part(
                    actor_id=actor_id, created_at=created_at, key_id=key_id, kind=kind,
                    actor_label=label,
                )  # fmt: skip
                mac = sealer(
                    message(
                        entry_id=entry_id, voucher_id=voucher_id,
                        prev=last.get(voucher_id, GENESIS), amount=amount,
                        balance_after=balance, usage_record_id=record_id, constant=constant,
                        memo=memo,
                    )
                )  # fmt: skip
                sealed.append(f"{entry_id}\t{mac}\n")
            last[voucher_id] = mac
    with raw.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE ledger_seal (id bigint, mac text) ON COMMIT DROP")
        with cursor.copy("COPY ledger_seal (id, mac) FROM STDIN") as copy:
            for start in range(0, len(sealed), 50_000):
                copy.write("".join(sealed[start : start + 50_000]))
        cursor.execute(
            "ALTER TABLE vouchers_ledgerentry DISABLE TRIGGER vouchers_ledgerentry_append_only"
        )
        cursor.execute(
            "UPDATE vouchers_ledgerentry e SET key_id = %s, mac = s.mac"
            " FROM ledger_seal s WHERE e.id = s.id",
            [key_id],
        )
        cursor.execute(
            "ALTER TABLE vouchers_ledgerentry ENABLE TRIGGER vouchers_ledgerentry_append_only"
        )
        cursor.execute("TRUNCATE ledger_seal")
        with cursor.copy("COPY ledger_seal (id, mac) FROM STDIN") as copy:
            copy.write("".join(f"{voucher_id}\t{mac}\n" for voucher_id, mac in last.items()))
        cursor.execute(
            "UPDATE vouchers_voucher v SET ledger_head = s.mac FROM ledger_seal s WHERE v.id = s.id"
        )
        cursor.execute("DROP TABLE ledger_seal")
    return len(sealed)


class ChainWriter:
    """Seals entries that a bulk load writes itself (seed_scale), in each voucher's id
    order; `heads` then holds each voucher's `ledger_head`."""

    def __init__(self) -> None:
        self.key_id, self._sealer = current_sealer()
        self.heads: dict[int, str] = {}

    def seal_row(self, row: tuple) -> str:
        """The mac of an entry given as (id, voucher id, kind, amount, balance_after,
        actor id, actor label, usage record id, memo, created_at), its chain's next."""
        entry_id, voucher_id, kind, amount, balance, actor_id, label, record_id, memo, at = row
        constant = constant_part(
            actor_id=actor_id, created_at=at, key_id=self.key_id, kind=kind, actor_label=label
        )
        mac = self.heads[voucher_id] = self._sealer(
            message(
                entry_id=entry_id,
                voucher_id=voucher_id,
                prev=self.heads.get(voucher_id, GENESIS),
                amount=amount,
                balance_after=balance,
                usage_record_id=record_id,
                constant=constant,
                memo=memo,
            )
        )
        return mac
