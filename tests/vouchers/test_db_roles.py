"""Least privilege in PostgreSQL (issue #15 item 4): the application's role, given its
grants by `grant_app_role` (as `migrate` does with MIGRATE_DATABASE_URL), does its work —
a voucher issued writes ledger entries and audit events — but cannot update, delete or
truncate the ledger or the audit trail, nor switch their triggers off, even by SQL.

The tests connect to the test database as that role (created here when missing: the
test runner's role is a superuser in development and CI)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from urllib.parse import quote

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from psycopg import errors

from portal.audit import audit_chain_verify, audit_record
from portal.dbroles import append_only_tables
from portal.models import AuditEvent, City
from tests.factories import UserFactory
from tests.vouchers.conftest import make_company, make_program
from vouchers.ledger import voucher_issue
from vouchers.models import LedgerEntry

ROLE = "suanli_app_test"
# The tables with an append-only trigger: the audit trail, the decision letters (issued
# letters never change) and the ledger.
APPEND_ONLY = ["portal_auditevent", "vouchers_decisionletter", "vouchers_ledgerentry"]
# Those the rewrite test fills from `history` (a letter needs a decided application).
REWRITTEN = ["portal_auditevent", "vouchers_ledgerentry"]

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def app_role() -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            f"""DO $$ BEGIN CREATE ROLE {ROLE} LOGIN;
                EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"""
        )
    call_command("grant_app_role", ROLE, stdout=io.StringIO())
    return ROLE


@contextmanager
def connected_as(role: str) -> Iterator[psycopg.Connection]:
    db = connection.settings_dict
    conn = psycopg.connect(
        dbname=db["NAME"], user=role, host=db.get("HOST") or None, port=db.get("PORT") or None
    )
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def django_as(role: str) -> Iterator[None]:
    """Django's own connection as `role` for the block (what the portal runs as)."""
    saved = connection.settings_dict["USER"], connection.settings_dict.get("PASSWORD")
    connection.close()
    connection.settings_dict.update(USER=role, PASSWORD="")
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict["USER"], connection.settings_dict["PASSWORD"] = saved


@pytest.fixture
def history(shanghai, startup_user):
    program = make_program(shanghai.city)
    voucher = voucher_issue(
        program=program,
        company=make_company(startup_user),
        amount=Decimal("1000.00"),
        actor=shanghai.approver,
        valid_from=date(2026, 11, 1),
    )
    return voucher


def test_the_append_only_tables_are_found_from_their_triggers():
    with connection.cursor() as cursor:
        assert append_only_tables(cursor) == APPEND_ONLY


def test_the_application_role_does_its_work(app_role, shanghai, startup_user):
    """The services run as the application's role: rows are inserted into the ledger
    and the audit trail, others updated, and the chain verifies."""
    program = make_program(shanghai.city)
    company = make_company(startup_user)
    with django_as(app_role):
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_user")
            assert cursor.fetchone()[0] == app_role
        voucher = voucher_issue(
            program=program,
            company=company,
            amount=Decimal("250.00"),
            actor=shanghai.approver,
            valid_from=date(2026, 11, 1),
        )
        City.objects.filter(pk=shanghai.city.pk).update(name_en="Shanghai (renamed)")
        assert LedgerEntry.objects.filter(voucher=voucher).exists()
        assert AuditEvent.objects.filter(city=shanghai.city).exists()
        assert audit_chain_verify() == []


@pytest.mark.parametrize("table", REWRITTEN)
def test_the_application_role_cannot_rewrite_the_append_only_tables(app_role, history, table):
    audit_record(action="test.one", city=history.program.city)
    with connected_as(app_role) as conn:
        (count,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
        assert count > 0
        # It inserts (a copy of a row, rolled back): the privilege is there.
        columns = [
            row[0]
            for row in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                "AND column_name NOT IN ('id', 'hash', 'seq')",
                [table],
            )
        ]
        cols = ", ".join(columns)
        extra = ", hash, seq" if table == "portal_auditevent" else ""
        values = ", md5(random()::text) || md5(random()::text), seq + 1000" if extra else ""
        conn.execute(
            f"INSERT INTO {table} ({cols}{extra}) "  # noqa: S608
            f"SELECT {cols}{values} FROM {table} ORDER BY id DESC LIMIT 1"
        )
        conn.rollback()
        refused = [
            f"UPDATE {table} SET id = id",  # noqa: S608
            f"DELETE FROM {table}",  # noqa: S608
            f"TRUNCATE {table}",
            f"ALTER TABLE {table} DISABLE TRIGGER ALL",
            f"ALTER TABLE {table} DISABLE TRIGGER USER",
            "SET session_replication_role = replica",
        ]
        for statement in refused:
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(statement)
            conn.rollback()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608
        assert cursor.fetchone()[0] == count


def test_the_application_role_cannot_change_decision_letters(app_role):
    """Privileges are checked before rows are looked at: an empty table refuses too."""
    table = "vouchers_decisionletter"
    with connected_as(app_role) as conn:
        for statement in (
            f"UPDATE {table} SET id = id",  # noqa: S608
            f"DELETE FROM {table}",  # noqa: S608
            f"TRUNCATE {table}",
            f"ALTER TABLE {table} DISABLE TRIGGER ALL",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(statement)
            conn.rollback()
        conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608


def test_the_application_role_owns_nothing_and_truncates_nothing(app_role):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_class WHERE relowner = %s::regrole "
            "AND relnamespace = current_schema()::regnamespace",
            [app_role],
        )
        assert cursor.fetchone()[0] == 0
        cursor.execute(
            """SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()
               AND has_table_privilege(%s, schemaname || '.' || tablename, 'TRUNCATE')""",
            [app_role],
        )
        assert cursor.fetchone()[0] == 0
        cursor.execute(
            "SELECT has_table_privilege(%s, 'portal_city', 'UPDATE'), "
            "has_table_privilege(%s, 'portal_auditevent', 'UPDATE')",
            [app_role, app_role],
        )
        assert cursor.fetchone() == (True, False)


def test_grant_refuses_a_role_that_owns_a_table(app_role):
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE roles_test_owned (x int)")
        cursor.execute(f"ALTER TABLE roles_test_owned OWNER TO {app_role}")
    try:
        with pytest.raises(CommandError, match="owns"):
            call_command("grant_app_role", app_role)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE roles_test_owned")


def test_migrate_runs_as_the_owner_and_grants_the_application_role(app_role, settings):
    """With MIGRATE_DATABASE_URL, `migrate` connects as that role and grants
    DATABASE_URL's; here the owner is the test runner's role and the application's is
    the test role, so afterwards the test role again holds no UPDATE on the ledger."""
    db = connection.settings_dict
    owner = db["USER"]
    with connection.cursor() as cursor:
        cursor.execute(f"GRANT UPDATE ON vouchers_ledgerentry TO {app_role}")
    port = f":{db['PORT']}" if db.get("PORT") else ""
    settings.MIGRATE_DATABASE_URL = (
        f"postgresql://{owner}@{quote(db.get('HOST') or '', safe='')}{port}/any"
    )
    connection.close()
    db["USER"] = app_role
    try:
        out = io.StringIO()
        call_command("migrate", "--noinput", stdout=out)
        assert f"Granted {app_role}" in out.getvalue()
        assert db["USER"] == app_role  # the application's connection again
    finally:
        connection.close()
        db["USER"] = owner
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT has_table_privilege(%s, 'vouchers_ledgerentry', 'UPDATE')", [app_role]
        )
        assert cursor.fetchone()[0] is False


def test_superusers_cannot_be_the_application_role():
    UserFactory()  # a world without fixtures still has a database
    with pytest.raises(CommandError, match="superuser or the owner"):
        call_command("grant_app_role", connection.settings_dict["USER"])
