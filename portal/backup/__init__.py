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

from portal.backup.create import (
    COUNTED_MODELS,
    DUMP,
    FORMAT,
    MANIFEST,
    MEDIA,
    backup_create,
    file_digest,
    manifest_read,
    media_archive,
)
from portal.backup.drill import Check, DrillReport, backup_checksums_verify, backup_restore_drill
from portal.backup.postgres import BackupError, libpq_params, pg_bin_dir

__all__ = [
    "COUNTED_MODELS",
    "DUMP",
    "FORMAT",
    "MANIFEST",
    "MEDIA",
    "BackupError",
    "Check",
    "DrillReport",
    "backup_checksums_verify",
    "backup_create",
    "backup_restore_drill",
    "file_digest",
    "libpq_params",
    "manifest_read",
    "media_archive",
    "pg_bin_dir",
]
