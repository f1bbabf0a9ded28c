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

import functools
import logging
import random
import re
import time
from collections.abc import Callable
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


_ROW_LOCK = re.compile(r"\bFOR (NO KEY )?UPDATE\b|\bFOR (KEY )?SHARE\b|^\s*(UPDATE|DELETE)\b")
# FOR UPDATE / NO KEY UPDATE / SHARE without `OF <table>`: every joined row is locked.
_LOCKS_JOINED = re.compile(r"\bFOR (NO KEY |KEY )?(UPDATE|SHARE)(?! OF)\b")


class LockOrderViolation(AssertionError):
    pass


class LockOrderGuard:
    """A `connection.execute_wrapper` that fails a statement locking rows after the
    audit lock was taken in the same transaction (rule 3 above). Statements on the
    audit table itself are its own business."""

    def __init__(self) -> None:
        self.audit_locked_at: tuple[str, ...] | None = None
        self.transaction: object = None  # the outermost atomic block it was taken in

    def __call__(self, execute: Callable, sql: str, params: Any, many: bool, context: dict) -> Any:
        conn = context["connection"]
        outermost = conn.atomic_blocks[0] if conn.atomic_blocks else None
        if outermost is None or outermost is not self.transaction:
            self.audit_locked_at = None
        text = sql if isinstance(sql, str) else str(sql)
        if "pg_advisory_xact_lock" in text and params and params[0] == AUDIT_CHAIN:
            if self.audit_locked_at is None:
                # `audit_record` runs in an atomic block of its own (the last savepoint):
                # what counts is the transaction of the service that called it.
                self.audit_locked_at = tuple(conn.savepoint_ids[:-1])
                self.transaction = outermost
        elif _LOCKS_JOINED.search(text) and " JOIN " in text:
            raise LockOrderViolation(
                "Rows of joined tables are locked; lock with of=('self',) "
                f"(portal/locks.py): {text[:300]}"
            )
        elif (
            self.audit_locked_at is not None
            and tuple(conn.savepoint_ids[: len(self.audit_locked_at)]) == self.audit_locked_at
            and "portal_auditevent" not in text
            and _ROW_LOCK.search(text)
        ):
            raise LockOrderViolation(
                "A row is locked after the audit lock in the same transaction "
                f"(portal/locks.py, rule 3): {text[:300]}"
            )
        return execute(sql, params, many, context)
