"""The restore drill: a backup restored into a throw-away database and checked (see the
package's docstring)."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from django.apps import apps
from django.conf import settings
from django.db.models import FileField
from psycopg import sql

from portal.backup.create import DUMP, MEDIA, file_digest, manifest_read, media_files
from portal.backup.postgres import (
    BackupError,
    connect,
    database_url,
    libpq_params,
    pg_bin_dir,
    row_counts,
    run,
    server_version,
    tool_env,
)

# PostgreSQL truncates identifiers to 63 bytes.
_MAX_NAME = 63


# --- the restore drill --------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class DrillReport:
    backup_dir: Path
    manifest: dict[str, Any]
    database: str | None = None
    media_dir: Path | None = None
    kept: bool = False
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    @property
    def failed(self) -> list[str]:
        return [check.name for check in self.checks if not check.ok]


def backup_checksums_verify(backup_dir: Path, manifest: dict[str, Any]) -> Check:
    """Compare the dump's and the archive's size and SHA-256 with the manifest: a backup
    that was truncated in transfer or altered is refused before anything is restored."""
    problems = []
    for name in (DUMP, MEDIA):
        expected = manifest.get("files", {}).get(name)
        path = Path(backup_dir) / name
        if expected is None:
            problems.append(f"{name} is not in the manifest")
        elif not path.is_file():
            problems.append(f"{name} is missing")
        elif (actual := file_digest(path)) != expected:
            problems.append(
                f"{name} does not match the manifest (sha256 {actual['sha256'][:12]}…, "
                f"{actual['size']} bytes; expected {expected['sha256'][:12]}…, "
                f"{expected['size']} bytes)"
            )
    if problems:
        return Check("checksums", False, "; ".join(problems))
    return Check("checksums", True, f"{DUMP} and {MEDIA} match the manifest (sha256)")


def _drill_name(source: str) -> str:
    suffix = f"_drill_{datetime.now(UTC):%Y%m%d_%H%M%S}_{secrets.token_hex(2)}"
    return source.encode()[: _MAX_NAME - len(suffix)].decode(errors="ignore") + suffix


def _database_create_like(conn: psycopg.Connection, name: str) -> None:
    """An empty database with the source's encoding and collation (they decide how text
    sorts, and so what its indexes hold)."""
    encoding, collate, ctype = conn.execute(  # type: ignore[misc]
        "SELECT pg_encoding_to_char(encoding), datcollate, datctype"
        " FROM pg_database WHERE datname = current_database()"
    ).fetchone()
    conn.execute(
        sql.SQL(
            "CREATE DATABASE {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}"
        ).format(
            sql.Identifier(name), sql.Literal(encoding), sql.Literal(collate), sql.Literal(ctype)
        )
    )


def _database_drop(params: dict[str, str], name: str) -> None:
    # FORCE: a verify process that hung up uncleanly must not keep the database alive.
    try:
        with connect(params, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    except psycopg.Error as exc:
        raise BackupError(
            f"Could not drop the drill database {name}; drop it by hand: {exc}"
        ) from exc


def _media_verify(media_dir: Path, manifest: dict[str, Any], conn: psycopg.Connection) -> Check:
    """The extracted files are the manifest's, byte for byte, and every file the restored
    database names (any FileField) is among them."""
    expected: dict[str, dict[str, Any]] = manifest.get("media_files", {})
    actual = {name: file_digest(path) for name, path in media_files(media_dir)}
    problems = []
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    changed = sorted(n for n in set(expected) & set(actual) if expected[n] != actual[n])
    for label, names in (
        ("missing", missing),
        ("not in the manifest", extra),
        ("changed", changed),
    ):
        if names:
            problems.append(f"{len(names)} file(s) {label}: {', '.join(names[:5])}")
    referenced = 0
    for model in apps.get_models():
        for model_field in model._meta.concrete_fields:
            if not isinstance(model_field, FileField):
                continue
            query = sql.SQL("SELECT DISTINCT {col} FROM {table} WHERE {col} <> ''").format(
                col=sql.Identifier(model_field.column),  # type: ignore[arg-type]
                table=sql.Identifier(model._meta.db_table),
            )
            names = [row[0] for row in conn.execute(query)]
            referenced += len(names)
            absent = [n for n in names if not (media_dir / n).is_file()]
            if absent:
                problems.append(
                    f"{model._meta.label}.{model_field.name} names {len(absent)} file(s) "
                    f"not in the archive: {', '.join(absent[:5])}"
                )
    if problems:
        return Check("media", False, "; ".join(problems))
    return Check(
        "media",
        True,
        f"{len(actual)} file(s) match the manifest; all {referenced} the database names are there",
    )


def _row_counts_verify(conn: psycopg.Connection, manifest: dict[str, Any]) -> Check:
    expected: dict[str, int] = manifest.get("row_counts", {})
    try:
        actual = row_counts(conn, list(expected))
    except psycopg.Error as exc:
        return Check("row counts", False, f"cannot count: {exc}")
    shown = ", ".join(f"{table} {count}" for table, count in actual.items())
    if actual != expected:
        wrong = ", ".join(
            f"{t} {actual[t]} (backup had {expected[t]})"
            for t in expected
            if actual[t] != expected[t]
        )
        return Check("row counts", False, f"differ from the manifest: {wrong}")
    return Check("row counts", True, f"as in the manifest: {shown}")


def _command_verify(command: str, params: dict[str, str]) -> Check:
    """Run one of the portal's own integrity commands in a new process whose
    DATABASE_URL is the restored database: the same code an operator would run."""
    env = dict(os.environ, DATABASE_URL=database_url(params))
    result = subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), command],
        env=env,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
    )
    output = " ".join((result.stdout.strip() + " " + result.stderr.strip()).split())
    return Check(command, result.returncode == 0, output or f"exit {result.returncode}")


def backup_restore_drill(
    *,
    backup_dir: Path,
    keep: bool = False,
    on_check: Callable[[Check], None] | None = None,
) -> DrillReport:
    """Restore a backup into a new database on the server of DATABASE_URL and check it.

    Checks, in order: the files' checksums (nothing is restored if they fail), the
    restore itself, row counts against the manifest, the media files, then
    `verify_ledger` and `verify_audit` on the restored database. Unless `keep`, the
    database and the extracted media are removed afterwards, whatever the outcome.
    `on_check` is told of each check as it finishes (a drill of a large backup takes
    a while).
    """
    backup_dir = Path(backup_dir)
    manifest = manifest_read(backup_dir)
    report = DrillReport(backup_dir=backup_dir, manifest=manifest, kept=keep)

    def record(check: Check) -> bool:
        report.checks.append(check)
        if on_check is not None:
            on_check(check)
        return check.ok

    if not record(backup_checksums_verify(backup_dir, manifest)):
        return report
    source = libpq_params()
    with connect(source, autocommit=True) as conn:
        server = server_version(conn)
        bin_dir, tools = pg_bin_dir(server)
        name = _drill_name(source["dbname"])
        try:
            _database_create_like(conn, name)
        except psycopg.Error as exc:
            raise BackupError(
                f"Cannot create the drill database {name} (the database user needs CREATEDB): {exc}"
            ) from exc
        report.database = name
    target = {**source, "dbname": report.database}
    try:
        try:
            run(
                [
                    str(bin_dir / "pg_restore"),
                    "--no-owner",
                    "--exit-on-error",
                    f"--dbname={report.database}",
                    str(backup_dir / DUMP),
                ],
                env=tool_env(target),
                what="pg_restore",
            )
        except BackupError as exc:
            record(Check("restore", False, str(exc)))
            return report
        record(
            Check(
                "restore",
                True,
                f"into {report.database} with {bin_dir / 'pg_restore'} "
                f"({tools[0]}.{tools[1]}; server {server[0]}.{server[1]})",
            )
        )
        report.media_dir = Path(tempfile.mkdtemp(prefix="suanli-drill-media-"))
        try:
            with tarfile.open(backup_dir / MEDIA) as tar:
                # The "data" filter refuses absolute paths, links out and device files.
                tar.extractall(report.media_dir, filter="data")
        except (tarfile.TarError, OSError) as exc:
            media: Check | None = Check("media", False, f"{MEDIA} does not extract: {exc}")
        else:
            media = None
        with connect(target, autocommit=True) as conn:
            record(_row_counts_verify(conn, manifest))
            try:
                media = media or _media_verify(report.media_dir, manifest, conn)
            except psycopg.Error as exc:
                media = Check("media", False, f"cannot read the file columns: {exc}")
            record(media)
        for command in ("verify_ledger", "verify_audit"):
            record(_command_verify(command, target))
        return report
    finally:
        if not keep:
            _database_drop(source, report.database)
            if report.media_dir is not None:
                shutil.rmtree(report.media_dir, ignore_errors=True)
