"""Taking a backup: the dump in an exported snapshot, the media archive, and the
manifest written last (see the package's docstring)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import psycopg
from django.apps import apps
from django.conf import settings

from portal.backup.postgres import (
    BackupError,
    connect,
    libpq_params,
    pg_bin_dir,
    row_counts,
    run,
    server_version,
    tool_env,
)

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


def media_files(root: Path) -> Iterator[tuple[str, Path]]:
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
        for name, path in media_files(root):
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
    with connect(params, autocommit=False) as conn:
        server = server_version(conn)
        bin_dir, tools = pg_bin_dir(server)
        # The snapshot the dump reads and the counts are taken in; held (this
        # transaction stays open) until pg_dump has attached to it.
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]  # type: ignore[index]
        counts = row_counts(conn, tables)
        run(
            [
                str(bin_dir / "pg_dump"),
                "--format=custom",
                f"--snapshot={snapshot}",
                f"--file={out_dir / DUMP}",
            ],
            env=tool_env(params),
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
