"""Backup and restore drill: a backup of real data restores into a new database whose
ledger and audit trail check clean and hold the same rows; a tampered backup fails.

The data must be committed for pg_dump (another connection) to see it, hence
`transaction=True`. Drill databases a test leaves behind are dropped after it."""

from __future__ import annotations

import json
import random
import re
import shutil
import tarfile
import tempfile
from datetime import date
from decimal import Decimal
from io import StringIO
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from psycopg import sql

from portal.backup import DUMP, MANIFEST, MEDIA, file_digest, libpq_params, manifest_read
from portal.models import AuditEvent
from tests.compute.conftest import usage_records_for
from tests.vouchers.conftest import PDF, complete_draft, program_values
from vouchers import services
from vouchers.credit_code import credit_code_generate
from vouchers.ledger import (
    ledger_charge_many,
    voucher_issue,
    voucher_resume,
    voucher_suspend,
    vouchers_lock,
)
from vouchers.models import Document, LedgerEntry, Voucher

pytestmark = pytest.mark.django_db(transaction=True)

LEDGER_ROWS = (
    "SELECT id, voucher_id, kind, amount, balance_after FROM vouchers_ledgerentry ORDER BY id"
)
AUDIT_ROWS = "SELECT city_id, seq, action, hash FROM portal_auditevent ORDER BY city_id, seq"


@pytest.fixture
def media_root(settings, tmp_path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def portal_data(world, startup_user, media_root) -> SimpleNamespace:
    """A program and an application with an uploaded document in Shanghai, a voucher
    there with charges on its ledger, one suspended and resumed, and a voucher in
    Shenzhen: ledger entries and audit events in two cities' chains, and a media file."""
    sh, sz = world["shanghai"], world["shenzhen"]
    program = services.program_save(city=sh.city, actor=sh.manager, values=program_values())
    sz_program = services.program_save(city=sz.city, actor=sz.manager, values=program_values())
    company = services.company_create(
        actor=startup_user,
        legal_name="深度河流科技有限公司",
        credit_code=credit_code_generate(random.Random(1)),
        registered_city=sh.city,
        founded_on=date(2024, 3, 1),
        headcount=40,
        revenue_last_year=Decimal("3000000.00"),
    )
    application = complete_draft(program, company, startup_user)
    voucher = voucher_issue(
        program=program,
        company=company,
        amount=Decimal("1000.00"),
        actor=sh.approver,
        valid_from=date(2026, 11, 1),
    )
    voucher_issue(
        program=sz_program,
        company=company,
        amount=Decimal("500.00"),
        actor=sz.approver,
        valid_from=date(2026, 11, 1),
    )
    records = usage_records_for(voucher, [Decimal("120.50"), Decimal("79.50")])
    with transaction.atomic():
        balances = {vid: b for vid, (_status, b) in vouchers_lock([voucher.pk]).items()}
        ledger_charge_many(
            balances=balances,
            charges=[
                (voucher.pk, Decimal("120.50"), records[0], "r-1"),
                (voucher.pk, Decimal("79.50"), records[1], "r-2"),
            ],
            actor_label="data center #1",
        )
    voucher_suspend(voucher=voucher, actor=sh.manager, reason="对账中")
    voucher_resume(voucher=voucher, actor=sh.manager, reason="对账完毕")
    document = Document.objects.get(application=application)
    return SimpleNamespace(voucher=voucher, document=document)


@pytest.fixture(autouse=True)
def _no_drill_left_behind(db):
    """Drop any drill database and media a test left, even one that failed after
    `--keep` (the drop itself is asserted by test_drill_drops_its_database_unless_kept)."""
    before = _drill_databases()
    media_before = set(Path(tempfile.gettempdir()).glob("suanli-drill-media-*"))
    yield
    with psycopg.connect(**libpq_params(), autocommit=True) as conn:
        for name in _drill_databases() - before:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            conn.execute(drop.format(sql.Identifier(name)))
    for path in set(Path(tempfile.gettempdir()).glob("suanli-drill-media-*")) - media_before:
        shutil.rmtree(path, ignore_errors=True)


def _backup(path: Path) -> str:
    out = StringIO()
    call_command("backup_create", "--out", str(path), stdout=out)
    return out.getvalue()


def _drill(path: Path, *extra: str) -> str:
    out = StringIO()
    try:
        call_command("backup_restore_drill", "--from", str(path), *extra, stdout=out)
    except CommandError as exc:
        exc.output = out.getvalue()
        raise
    return out.getvalue()


def _drill_databases() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s",
            [connection.settings_dict["NAME"] + "_drill_%"],
        )
        return {row[0] for row in cursor.fetchall()}


def _rows(query: str, *, dbname: str | None = None) -> list[tuple]:
    with psycopg.connect(**libpq_params(dbname)) as conn:
        return conn.execute(query).fetchall()


def test_drill_restores_ledger_audit_and_media_and_reports_them_clean(portal_data, tmp_path):
    backup_dir = tmp_path / "backup"
    _backup(backup_dir)
    ledger, audit = _rows(LEDGER_ROWS), _rows(AUDIT_ROWS)
    assert len(ledger) == 4 and LedgerEntry.objects.count() == 4  # 2 issues, 2 charges
    assert len(audit) == AuditEvent.objects.count() >= 6
    manifest = manifest_read(backup_dir)
    assert manifest["row_counts"]["vouchers_ledgerentry"] == 4
    assert manifest["row_counts"]["portal_auditevent"] == len(audit)
    # The tools fit the server: pg_dump of another major version would refuse or mislead.
    assert manifest["pg_dump"]["version"].split(".")[0] == manifest["server_version"].split(".")[0]

    output = _drill(backup_dir, "--keep")
    kept = re.search(r"Kept database (\S+), media in (\S+)", output)
    assert kept, output
    database, media_dir = kept[1], Path(kept[2])
    for line in [
        "ok   checksums:",
        "ok   restore:",
        "ok   row counts:",
        "ok   media: 1 file(s) match the manifest; all 1 the database names are there",
        "ok   verify_ledger: Ledger reconciles: every balance and chain matches.",
        "ok   verify_audit: Audit chains intact.",
        "Restore drill passed.",
    ]:
        assert line in output
    assert database in _drill_databases()
    # The restored database holds the same ledger and audit rows, not just as many.
    assert _rows(LEDGER_ROWS, dbname=database) == ledger
    assert _rows(AUDIT_ROWS, dbname=database) == audit
    assert (media_dir / portal_data.document.file.name).read_bytes() == PDF


def test_drill_drops_its_database_unless_kept(portal_data, tmp_path):
    _backup(tmp_path / "backup")
    before = _drill_databases()
    output = _drill(tmp_path / "backup")
    assert "Restore drill passed." in output
    dropped = re.search(r"Dropped database (\S+)", output)
    assert dropped and dropped[1] not in _drill_databases()
    assert _drill_databases() == before


def test_drill_checks_the_restored_copy_not_the_live_database(portal_data, tmp_path):
    _backup(tmp_path / "backup")
    # Broken after the backup: the live ledger disagrees, the backed-up one does not.
    Voucher.objects.filter(pk=portal_data.voucher.pk).update(balance=Decimal("999.99"))
    with pytest.raises(CommandError):
        call_command("verify_ledger", stdout=StringIO(), stderr=StringIO())
    assert "Restore drill passed." in _drill(tmp_path / "backup")


def test_drill_fails_when_the_backed_up_ledger_disagrees(portal_data, tmp_path):
    Voucher.objects.filter(pk=portal_data.voucher.pk).update(balance=Decimal("999.99"))
    _backup(tmp_path / "backup")
    before = _drill_databases()
    with pytest.raises(CommandError, match="verify_ledger") as failure:
        _drill(tmp_path / "backup")
    assert f"FAIL verify_ledger: {portal_data.voucher.code}" in failure.value.output
    assert "ok   verify_audit:" in failure.value.output
    assert _drill_databases() == before


def test_drill_refuses_a_tampered_dump_before_restoring_anything(portal_data, tmp_path):
    backup_dir = tmp_path / "backup"
    _backup(backup_dir)
    dump = backup_dir / DUMP
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte different
    dump.write_bytes(bytes(data))
    before = _drill_databases()
    with pytest.raises(CommandError, match="checksums") as failure:
        _drill(backup_dir)
    assert "FAIL checksums: database.dump does not match the manifest" in failure.value.output
    assert "restore" not in failure.value.output.split("FAIL checksums")[1]
    assert _drill_databases() == before


def test_drill_fails_when_a_document_is_missing_from_the_archive(portal_data, tmp_path):
    """A backup whose archive lost a file (its manifest rewritten to match, as a faulty
    backup job would write it) passes the checksums but not the media check."""
    backup_dir = tmp_path / "backup"
    _backup(backup_dir)
    with tarfile.open(backup_dir / MEDIA, "w"):
        pass  # an empty archive
    manifest = manifest_read(backup_dir)
    manifest["files"][MEDIA] = file_digest(backup_dir / MEDIA)
    (backup_dir / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CommandError, match="media") as failure:
        _drill(backup_dir)
    output = failure.value.output
    assert "ok   checksums:" in output and "ok   verify_ledger:" in output
    assert f"FAIL media: 1 file(s) missing: {portal_data.document.file.name}" in output
    assert "vouchers.Document.file names 1 file(s) not in the archive" in output


def test_backup_refuses_a_directory_that_holds_something(portal_data, tmp_path):
    backup_dir = tmp_path / "backup"
    _backup(backup_dir)
    with pytest.raises(CommandError, match="not empty"):
        _backup(backup_dir)


def test_backup_uses_the_tools_pg_bin_dir_names(portal_data, tmp_path, monkeypatch):
    monkeypatch.setenv("PG_BIN_DIR", str(tmp_path / "no-postgres-here"))
    with pytest.raises(CommandError, match="PG_BIN_DIR"):
        _backup(tmp_path / "backup")
    assert not (tmp_path / "backup").exists()  # no half backup left behind
