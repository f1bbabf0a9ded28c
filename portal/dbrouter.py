"""Reads of reports and exports from a PostgreSQL replica, when there is one.

With `DATABASE_REPLICA_URL` set, settings add a `replica` database and this router.
Code that reads for a report opts in with a block; everything else, and every write
anywhere, goes to the primary:

    with use_replica():
        rows = list(settlement.lines.order_by("id"))

    @use_replica()
    def statement_csv(settlement): ...

Why a block rather than routing by model: a replica lags (usually by milliseconds, by
minutes when it falls behind), and whether that is acceptable depends on the read, not
the table. A statement already issued never changes, so its download may read a lagging
copy; the same statement's draft, just rebuilt, may not (hence `use_replica(enabled)`).
A service that reads in order to write (a lock, a balance, a check) must never see a
stale copy: outside a block, reads go to the primary.

The block holds a context variable, so it follows the thread (and asyncio task) that
entered it and nothing else. A query is routed when it runs, so a queryset must be
evaluated inside the block to be read from the replica.
"""

from __future__ import annotations

from contextlib import ContextDecorator
from contextvars import ContextVar, Token

from django.db import DEFAULT_DB_ALIAS, connections

REPLICA = "replica"

_reading_replica: ContextVar[bool] = ContextVar("reading_replica", default=False)


def replica_configured() -> bool:
    return REPLICA in connections.settings


class use_replica(ContextDecorator):
    """Reads in this block go to the replica if there is one (and `enabled`)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._token: Token[bool] | None = None

    def _recreate_cm(self) -> use_replica:
        # As a decorator, a block of its own per call: calls in other threads (or
        # recursive ones) never share a token.
        return type(self)(self.enabled)

    def __enter__(self) -> use_replica:
        self._token = _reading_replica.set(self.enabled)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _reading_replica.reset(self._token)


def reading_alias() -> str:
    """Where a read made now goes."""
    if _reading_replica.get() and replica_configured():
        return REPLICA
    return DEFAULT_DB_ALIAS


class ReplicaRouter:
    """Reads: the replica inside `use_replica()`, else the primary (also for objects
    loaded from the replica: Django would otherwise keep reading their relations there).
    Writes and migrations: the primary only."""

    def db_for_read(self, model, **hints) -> str:
        return reading_alias()

    def db_for_write(self, model, **hints) -> str:
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints) -> bool | None:
        # Both are copies of one database.
        aliases = {DEFAULT_DB_ALIAS, REPLICA}
        if obj1._state.db in aliases and obj2._state.db in aliases:
            return True
        return None

    def allow_migrate(self, db: str, app_label: str, **hints) -> bool | None:
        # A physical replica follows the primary's schema by itself.
        return db != REPLICA
