"""Least privilege in PostgreSQL: the portal runs as a role that owns nothing.

Two roles (SECURITY.md, docs/deploy.md):
- the **owner** (`MIGRATE_DATABASE_URL`) owns the tables; `manage.py migrate` connects as
  it, and afterwards grants the application role what it needs;
- the **application role** (`DATABASE_URL`) reads and writes rows, no more: on every
  append-only table — those whose trigger calls `suanli_refuse_change()`, the audit trail
  and the voucher ledger — INSERT and SELECT only; no TRUNCATE anywhere; and, owning no
  table, it cannot ALTER one, so it cannot disable a trigger either.

Without `MIGRATE_DATABASE_URL` everything runs as `DATABASE_URL`, as before (development).
The grants are found from the catalogue, not listed here, so portal names no table of the
apps after it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dj_database_url
from django.conf import settings
from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from psycopg import sql

# What the application role may do to rows; append-only tables lose UPDATE and DELETE.
ROW_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")
APPEND_ONLY_PRIVILEGES = ("SELECT", "INSERT")
_CREDENTIALS = ("USER", "PASSWORD", "HOST", "PORT")


class RoleError(Exception):
    """The application role cannot be given least privilege as it is (it owns tables,
    is a superuser, or is the owner)."""


def owner_settings() -> dj_database_url.DBConfig | None:
    """The owner's connection settings from MIGRATE_DATABASE_URL (None when unset)."""
    url = getattr(settings, "MIGRATE_DATABASE_URL", None)
    return dj_database_url.parse(url) if url else None


@contextmanager
def as_owner(alias: str = "default") -> Iterator[BaseDatabaseWrapper]:
    """Connect `alias` as the owner for the block, then as the application again.

    Only the credentials and address change: the database is the connection's own, so
    a test database (pytest-django renames it) stays the one migrated."""
    connection = connections[alias]
    owner = owner_settings()
    if owner is None:
        yield connection
        return
    saved = {key: connection.settings_dict.get(key) for key in _CREDENTIALS}
    connection.close()
    connection.settings_dict.update({key: owner.get(key) for key in _CREDENTIALS})
    try:
        yield connection
    finally:
        connection.close()
        connection.settings_dict.update(saved)


def app_role_name(alias: str = "default") -> str | None:
    """The application role: DATABASE_URL's user, when migrations run as another."""
    owner = owner_settings()
    user = connections[alias].settings_dict.get("USER")
    if owner is None or not user or user == owner.get("USER"):
        return None
    return user


def append_only_tables(cursor: Any) -> list[str]:
    """Tables whose rows PostgreSQL refuses to change (a `suanli_refuse_change` trigger)."""
    cursor.execute(
        """
        SELECT DISTINCT c.relname
        FROM pg_trigger t
        JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_proc p ON p.oid = t.tgfoid
        WHERE p.proname = 'suanli_refuse_change' AND NOT t.tgisinternal
          AND c.relnamespace = current_schema()::regnamespace
        ORDER BY c.relname
        """
    )
    return [row[0] for row in cursor.fetchall()]


def _refuse_unsafe(cursor: Any, role: str) -> None:
    cursor.execute(
        "SELECT rolsuper, rolname = current_user FROM pg_roles WHERE rolname = %s", [role]
    )
    row = cursor.fetchone()
    if row is None:
        raise RoleError(f"role {role} does not exist: CREATE ROLE {role} LOGIN PASSWORD '…'")
    if row[0] or row[1]:
        raise RoleError(
            f"role {role} is a superuser or the owner itself: give it a role of its own"
        )
    # Owning a table (or being a member of its owner) is what lets a role ALTER it,
    # DISABLE its triggers and TRUNCATE it, whatever was granted.
    cursor.execute(
        """
        SELECT c.relname FROM pg_class c
        WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p', 'S')
          AND pg_has_role(%s, c.relowner, 'USAGE')
        ORDER BY c.relname LIMIT 5
        """,
        [role],
    )
    owned = [r[0] for r in cursor.fetchall()]
    if owned:
        raise RoleError(
            f"role {role} owns (or is a member of the owner of) {', '.join(owned)}: "
            f"run REASSIGN OWNED BY {role} TO <owner> as the owner first"
        )


def app_role_grant(role: str, alias: str = "default") -> list[str]:
    """Give `role` exactly the application's privileges on the connection's schema, as
    the connection's user (the owner); returns the append-only tables. Idempotent: every
    run revokes what it does not grant, so a table that became append-only loses UPDATE."""
    # One transaction: the running application never sees its rights revoked midway.
    with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
        _refuse_unsafe(cursor, role)
        tables = append_only_tables(cursor)
        ident = sql.Identifier(role)
        cursor.execute("SELECT current_schema(), current_database()")
        schema_name, database = cursor.fetchone()
        schema = sql.Identifier(schema_name)
        rows = sql.SQL(", ").join(sql.SQL(p) for p in ROW_PRIVILEGES)
        statements = [
            sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(
                sql.Identifier(database), ident
            ),
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, ident),
            sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(schema, ident),
            sql.SQL("GRANT {} ON ALL TABLES IN SCHEMA {} TO {}").format(rows, schema, ident),
            sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}").format(
                schema, ident
            ),
            # Tables and sequences the owner creates later: rows at once (the next
            # migrate takes UPDATE and DELETE back from append-only ones).
            sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT {} ON TABLES TO {}").format(
                schema, rows, ident
            ),
            sql.SQL(
                "ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT USAGE, SELECT ON SEQUENCES TO {}"
            ).format(schema, ident),
        ]
        statements += [
            sql.SQL("REVOKE UPDATE, DELETE ON {} FROM {}").format(sql.Identifier(t), ident)
            for t in tables
        ]
        for statement in statements:
            cursor.execute(statement)
    return tables
