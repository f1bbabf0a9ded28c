"""The portal's locks in one place: the advisory-lock namespaces, the order in which a
transaction may take locks, and a retry for the rare transaction that still meets a
deadlock. docs/architecture.md ("Lock order") explains the order; the test suite checks
it on every statement it runs (`LockOrderGuard`, installed by tests/conftest.py).

The order, outermost first:
1. advisory locks that serialise a whole operation (a usage batch's Idempotency-Key, a
   settlement's city × data center, a data center's feed sync — a session lock);
2. rows, each kind in this order and, within a kind, by ascending id: usage batch →
   usage record → company → program → application → voucher → redemption → settlement;
3. the audit chain's lock (one per city), taken by `portal.audit.audit_record` just
   before it appends, and held to the commit. **Nothing is locked after it**: a
   transaction that writes several audit events writes them at its end.

Row locks are taken with `of=("self",)` whenever the query joins other tables: a plain
`select_for_update().select_related("city")` also locks the city row FOR UPDATE, which
every audit event's foreign key needs to share, and that was the deadlock between a
voucher's suspension and a data center's void (issue #16).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import re
import time
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar

from django.db import OperationalError, connection
from psycopg import errors as pg_errors

log = logging.getLogger(__name__)

# Advisory-lock namespaces (the first key of PostgreSQL's two-key form). One registry,
# so no two uses can collide; the values are part of the protocol between processes.
AUDIT_CHAIN = 0x5A1  # second key: the city's id (0: the platform chain)
FEED_SYNC = 0x5A3  # second key: the data center's id (a session lock)
USAGE_IDEMPOTENCY_KEY = 0x5A4  # second key: hashtext("<data center id>:<key>")

P = ParamSpec("P")
R = TypeVar("R")

_RETRYABLE = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure)


def retry_on_deadlock(attempts: int = 3) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Run a service again when PostgreSQL aborted its transaction to break a deadlock
    (or a serialisation failure). Only at the outermost transaction: inside another
    one, the caller's transaction is lost too and must be retried as a whole."""

    def decorate(service: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(service)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            if connection.in_atomic_block:
                return service(*args, **kwargs)
            for attempt in range(1, attempts + 1):
                try:
                    return service(*args, **kwargs)
                except OperationalError as error:
                    if not isinstance(error.__cause__, _RETRYABLE) or attempt == attempts:
                        raise
                    log.warning("%s: %s; retrying", service.__qualname__, error.__cause__)
                    time.sleep(random.uniform(0.01, 0.05) * attempt)  # noqa: S311 - jitter
            raise AssertionError("unreachable")

        return run

    return decorate


@contextlib.contextmanager
def single_writer() -> Iterator[None]:
    """A block that runs while nothing else writes (seeding the demo, in one
    transaction, before the portal serves): the lock order exists to keep concurrent
    writers from deadlocking, so `LockOrderGuard` does not judge what runs here."""
    connection.lock_order_exempt = True  # type: ignore[attr-defined]
    try:
        yield
    finally:
        connection.lock_order_exempt = False  # type: ignore[attr-defined]


_ROW_LOCK = re.compile(r"\bFOR (NO KEY )?UPDATE\b|\bFOR (KEY )?SHARE\b|^\s*(UPDATE|DELETE)\b")
# The table a statement writes or locks: UPDATE t, DELETE FROM t, INSERT INTO t, COPY t,
# or the first FROM t of a SELECT … FOR UPDATE.
_TABLE = re.compile(
    r'^\s*(?:UPDATE|DELETE\s+FROM|INSERT\s+INTO|COPY)\s+"?(\w+)"?|\bFROM\s+"?(\w+)"?', re.I
)
# FOR UPDATE / NO KEY UPDATE / SHARE without `OF <table>`: every joined row is locked.
_LOCKS_JOINED = re.compile(r"\bFOR (NO KEY |KEY )?(UPDATE|SHARE)(?! OF)\b")


class LockOrderViolation(AssertionError):
    pass


def _table(sql: str) -> str | None:
    match = _TABLE.search(sql)
    return None if match is None else (match[1] or match[2]).lower()


class LockOrderGuard:
    """A `connection.execute_wrapper` for tests that fails a statement breaking the
    lock order:
    - locking the rows of joined tables (`select_for_update` without `of=`);
    - locking or writing a table after the audit lock when the transaction had not
      locked or written that table before it (rule 3). Judged by table, not by row: a
      row the transaction already holds (the application it locked first, the voucher
      it just created) is written again without waiting, and telling rows apart is
      beyond a statement wrapper; a table first reached after the audit lock is what
      made the deadlocks found so far.
    Statements on the audit table itself are its own business.

    `base_depth` is the number of atomic blocks open when the guard is installed (a
    test case's own transaction): the transaction that matters is the first block the
    code under test opens, whose savepoints do not release an advisory lock."""

    def __init__(self, base_depth: int = 0) -> None:
        self.base_depth = base_depth
        self.transaction: object = None  # the block the audit lock was taken in
        self.touched: set[str] = set()  # tables locked or written in that block before it
        self.block: object = None  # the block `touched` belongs to

    def __call__(self, execute: Callable, sql: str, params: Any, many: bool, context: dict) -> Any:
        conn = context["connection"]
        if getattr(conn, "lock_order_exempt", False):
            return execute(sql, params, many, context)
        blocks = conn.atomic_blocks
        current = blocks[self.base_depth] if len(blocks) > self.base_depth else None
        if current is not self.block:  # a new transaction of the code under test
            self.block, self.touched, self.transaction = current, set(), None
        text = sql if isinstance(sql, str) else str(sql)
        if "pg_advisory_xact_lock" in text and params and params[0] == AUDIT_CHAIN:
            if current is not None and self.transaction is None:
                self.transaction = current
        elif _LOCKS_JOINED.search(text) and " JOIN " in text:
            raise LockOrderViolation(
                "Rows of joined tables are locked; lock with of=('self',) "
                f"(portal/locks.py): {text[:300]}"
            )
        else:
            writes = _ROW_LOCK.search(text) or text.lstrip()[:6].upper() in ("INSERT", "COPY ")
            table = _table(text) if writes else None
            if table is not None and table != "portal_auditevent":
                if self.transaction is None:
                    self.touched.add(table)
                elif _ROW_LOCK.search(text) and table not in self.touched:
                    raise LockOrderViolation(
                        f"{table} is locked after the audit lock in the same transaction "
                        f"(portal/locks.py, rule 3): {text[:300]}"
                    )
        return execute(sql, params, many, context)
