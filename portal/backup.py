"""Backups of the portal, and the drill that proves a backup restores.

A backup is a directory of three files:

- `database.dump`: `pg_dump --format=custom` of the default database;
- `media.tar`: every file under MEDIA_ROOT (the applicants' private documents);
- `manifest.json`, written last: when it was taken, the commit, the database, each
  file's size and SHA-256, the rows of the money and evidence tables as the dump saw
  them, and each media file's size and SHA-256. A directory without a manifest is an
  unfinished backup.

The dump is taken in a snapshot exported by a transaction of our own, in which the
manifest's row counts are read too, so they describe exactly what the dump holds. The
media files are archived after that snapshot: documents are only ever added, so every
file the dump names is in the archive (a file uploaded meanwhile is there too, unnamed).

`backup_restore_drill` restores a backup into a new database on the same server, runs
`verify_ledger` and `verify_audit` against it, compares row counts and media files with
the manifest, and drops the database again. A backup that has never been restored is a
hope; docs/operations.md says how often to drill and how to restore for real.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, urlencode

import psycopg
from django.apps import apps
from django.conf import settings
from django.db import connections
from django.db.models import FileField
from psycopg import sql

DUMP = "database.dump"
MEDIA = "media.tar"
MANIFEST = "manifest.json"
FORMAT = 1
# Counted in the dump's snapshot, checked after a restore: the money, the evidence, and
# what points at the media files. (Usage records are left out: the biggest table, and
# every charge they led to is a ledger entry, which is counted.)
COUNTED_MODELS = (
    "vouchers.LedgerEntry",
    "portal.AuditEvent",
    "vouchers.Voucher",
    "vouchers.Document",
)
# PostgreSQL truncates identifiers to 63 bytes.
_MAX_NAME = 63
# Connection settings of Django's OPTIONS that libpq also reads from the environment.
_LIBPQ_ENV = {
    "host": "PGHOST",
    "port": "PGPORT",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "dbname": "PGDATABASE",
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "passfile": "PGPASSFILE",
    "options": "PGOPTIONS",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
}


class BackupError(Exception):
    """A backup could not be taken or read; the message says what to do."""


# --- connecting and the PostgreSQL tools --------------------------------------------------


def libpq_params(dbname: str | None = None, alias: str = "default") -> dict[str, str]:
    """libpq parameters of Django's connection (optionally to another database on the same
    server). Read from the connection, not settings.DATABASES as first configured, so that
    under pytest it is the test database."""
    conf = connections[alias].settings_dict
    params = {
        "dbname": dbname or conf["NAME"],
        "host": conf.get("HOST") or "",
        "port": str(conf.get("PORT") or ""),
        "user": conf.get("USER") or "",
        "password": conf.get("PASSWORD") or "",
    }
    for key, value in (conf.get("OPTIONS") or {}).items():
        if key in _LIBPQ_ENV and isinstance(value, str | int):
            params[key] = str(value)
    return {key: value for key, value in params.items() if value}


def _connect(params: dict[str, str], *, autocommit: bool) -> psycopg.Connection:
    try:
        return psycopg.connect(**params, autocommit=autocommit)
    except psycopg.OperationalError as exc:
        raise BackupError(f"Cannot connect to database {params['dbname']}: {exc}") from exc


def _tool_env(params: dict[str, str]) -> dict[str, str]:
    """The environment for pg_dump / pg_restore: the password goes through PGPASSWORD,
    never the command line, where `ps` would show it."""
    return {**os.environ, **{_LIBPQ_ENV[key]: value for key, value in params.items()}}


def _database_url(params: dict[str, str]) -> str:
    """A DATABASE_URL for the settings (dj-database-url) naming the same connection."""
    userinfo = quote(params.get("user", ""), safe="")
    if params.get("password"):
        userinfo += ":" + quote(params["password"], safe="")
    netloc = (userinfo + "@" if userinfo else "") + quote(params.get("host", ""), safe="")
    if params.get("port"):
        netloc += ":" + params["port"]
    query = {
        k: v for k, v in params.items() if k not in {"host", "port", "user", "password", "dbname"}
    }
    url = f"postgresql://{netloc}/{quote(params['dbname'], safe='')}"
    return url + ("?" + urlencode(query) if query else "")


def _version(text: str) -> tuple[int, int] | None:
    match = re.search(r"(\d+)\.(\d+)", text)
    return (int(match[1]), int(match[2])) if match else None


def _server_version(conn: psycopg.Connection) -> tuple[int, int]:
    number = conn.info.server_version  # e.g. 150020 for 15.20
    return number // 10000, number % 10000


def _tool_version(bin_dir: Path) -> tuple[int, int] | None:
    dump, restore = bin_dir / "pg_dump", bin_dir / "pg_restore"
    if not (os.access(dump, os.X_OK) and os.access(restore, os.X_OK)):
        return None
    try:
        out = subprocess.run(  # noqa: S603 - a fixed argument list
            [str(dump), "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return _version(out.split("PostgreSQL)", 1)[-1])


def _candidate_bin_dirs() -> list[Path]:
    candidates: list[Path] = []
    # The pgserver wheel's own binaries (what `pgserver._commands.POSTGRES_BIN_PATH`
    # points at), found without importing the dev-only package.
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.submodule_search_locations:
        candidates.append(Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin")
    on_path = shutil.which("pg_dump")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    # Debian and Ubuntu install each major version side by side here.
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    candidates.extend(debian)
    unique: list[Path] = []
    for candidate in candidates:
        if candidate not in unique:
            unique.append(candidate)
    return unique


def pg_bin_dir(server: tuple[int, int]) -> tuple[Path, tuple[int, int]]:
    """The directory of the pg_dump and pg_restore to use with a server of this version,
    and their version.

    pg_dump refuses a server newer than itself, and a newer one may write SQL an older
    server does not know, so both come from one directory that fits the server:
    PG_BIN_DIR when set (trusted as it is); otherwise, among the pgserver wheel's
    binaries (the private server of `make test`), those on PATH and Debian's
    /usr/lib/postgresql/*/bin, the server's exact version first, then its major
    version, then the nearest newer major.
    """
    override = os.environ.get("PG_BIN_DIR")
    if override:
        version = _tool_version(Path(override))
        if version is None:
            raise BackupError(f"PG_BIN_DIR={override} has no working pg_dump and pg_restore.")
        return Path(override), version
    found = [(d, v) for d in _candidate_bin_dirs() if (v := _tool_version(d)) is not None]
    for fits in (
        lambda v: v == server,
        lambda v: v[0] == server[0],
        lambda v: v[0] > server[0],
    ):
        matching = [(d, v) for d, v in found if fits(v)]
        if matching:
            # The lowest fitting major version, of it the latest minor (bug fixes); on a
            # tie the first candidate, so pgserver's own binaries for its own server.
            return min(matching, key=lambda dv: (dv[1][0], -dv[1][1]))
    seen = ", ".join(f"{d} ({v[0]}.{v[1]})" for d, v in found) or "none"
    raise BackupError(
        f"No pg_dump/pg_restore fits PostgreSQL {server[0]}.{server[1]} (found: {seen}). "
        f"Install the client of that version or set PG_BIN_DIR to its bin directory."
    )


# --- files ---------------------------------------------------------------------------------


def file_digest(path: Path) -> dict[str, Any]:
    """Size and SHA-256 of a file, as the manifest records them."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return {"size": path.stat().st_size, "sha256": digest.hexdigest()}


class _HashingReader:
    """Hashes what tarfile reads, so each media file is read from disk once."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        chunk = self.handle.read(size)
        self.digest.update(chunk)
        return chunk


def _media_files(root: Path) -> Iterator[tuple[str, Path]]:
    """Regular files under root, by relative POSIX path, in a stable order. Links are
    left out: uploads never make them, and following one could archive files that are
    not the portal's."""
    if not root.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                yield path.relative_to(root).as_posix(), path


def media_archive(*, root: Path, out: Path) -> dict[str, dict[str, Any]]:
    """Write every media file into an uncompressed tar (documents are PDF, PNG and JPEG,
    compressed already); return each file's size and SHA-256 by relative path."""
    listing: dict[str, dict[str, Any]] = {}
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, path in _media_files(root):
            info = tar.gettarinfo(str(path), arcname=name)
            with path.open("rb") as handle:
                reader = _HashingReader(handle)
                tar.addfile(info, reader)
            listing[name] = {"size": info.size, "sha256": reader.digest.hexdigest()}
    return listing


def _git_commit() -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    try:
        result = subprocess.run(  # noqa: S603 - a fixed argument list
            [git, "rev-parse", "HEAD"],
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None  # not a checkout (a deploy from an archive)
    return result.stdout.strip() or None


def _counted_tables() -> list[str]:
    return [apps.get_model(label)._meta.db_table for label in COUNTED_MODELS]


def _row_counts(conn: psycopg.Connection, tables: list[str]) -> dict[str, int]:
    counts = {}
    for table in tables:
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        counts[table] = conn.execute(query).fetchone()[0]
    return counts


def _run(args: list[str], *, env: dict[str, str], what: str) -> None:
    result = subprocess.run(args, env=env, capture_output=True, text=True)  # noqa: S603
    if result.returncode != 0:
        raise BackupError(f"{what} failed (exit {result.returncode}): {result.stderr.strip()}")


# --- taking a backup ----------------------------------------------------------------------


def backup_create(*, out_dir: Path) -> dict[str, Any]:
    """Take a backup into `out_dir` (new or empty); return its manifest.

    The directory and files are readable by their owner only: they hold every
    applicant's documents and personal data.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise BackupError(f"{out_dir} is not empty; a backup never overwrites another.")
    created = not out_dir.exists()
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        try:
            return _backup_write(out_dir)
        except psycopg.Error as exc:
            raise BackupError(f"the database refused: {exc} (is it migrated?)") from exc
    except BaseException:
        # Leave no half backup behind: a directory without a manifest only confuses.
        if created:
            shutil.rmtree(out_dir, ignore_errors=True)
        else:
            for child in out_dir.iterdir():
                child.unlink(missing_ok=True)
        raise


def _backup_write(out_dir: Path) -> dict[str, Any]:
    params = libpq_params()
    tables = _counted_tables()
    started = datetime.now(UTC)
    with _connect(params, autocommit=False) as conn:
        server = _server_version(conn)
        bin_dir, tools = pg_bin_dir(server)
        # The snapshot the dump reads and the counts are taken in; held (this
        # transaction stays open) until pg_dump has attached to it.
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        counts = _row_counts(conn, tables)
        _run(
            [
                str(bin_dir / "pg_dump"),
                "--format=custom",
                f"--snapshot={snapshot}",
                f"--file={out_dir / DUMP}",
            ],
            env=_tool_env(params),
            what="pg_dump",
        )
        conn.rollback()
    media_root = Path(settings.MEDIA_ROOT)
    media = media_archive(root=media_root, out=out_dir / MEDIA)
    for name in (DUMP, MEDIA):
        (out_dir / name).chmod(0o600)
    manifest = {
        "format": FORMAT,
        "created_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "database": params["dbname"],
        "server_version": f"{server[0]}.{server[1]}",
        "pg_dump": {"path": str(bin_dir / "pg_dump"), "version": f"{tools[0]}.{tools[1]}"},
        "media_root": str(media_root),
        "files": {name: file_digest(out_dir / name) for name in (DUMP, MEDIA)},
        "row_counts": counts,
        "media_files": media,
    }
    manifest_path = out_dir / MANIFEST
    partial = out_dir / (MANIFEST + ".partial")
    partial.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    partial.chmod(0o600)
    partial.replace(manifest_path)  # last, and atomically: its presence marks a whole backup
    return manifest


def manifest_read(backup_dir: Path) -> dict[str, Any]:
    path = Path(backup_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise BackupError(f"{path} is missing: not a backup, or an unfinished one.") from None
    except ValueError as exc:
        raise BackupError(f"{path} is not valid JSON: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: unknown manifest format {manifest.get('format')!r}.")
    return manifest


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
    encoding, collate, ctype = conn.execute(
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
        with _connect(params, autocommit=True) as conn:
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
    actual = {name: file_digest(path) for name, path in _media_files(media_dir)}
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
                col=sql.Identifier(model_field.column), table=sql.Identifier(model._meta.db_table)
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
        actual = _row_counts(conn, list(expected))
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
    env = dict(os.environ, DATABASE_URL=_database_url(params))
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
    with _connect(source, autocommit=True) as conn:
        server = _server_version(conn)
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
            _run(
                [
                    str(bin_dir / "pg_restore"),
                    "--no-owner",
                    "--exit-on-error",
                    f"--dbname={report.database}",
                    str(backup_dir / DUMP),
                ],
                env=_tool_env(target),
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
        with _connect(target, autocommit=True) as conn:
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
