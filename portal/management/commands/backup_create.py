"""Take a consistent backup: database dump, media archive and manifest (portal.backup)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from portal.backup import BackupError, backup_create


class Command(BaseCommand):
    help = (
        "Back up the database (pg_dump, custom format) and MEDIA_ROOT (tar) into a new "
        "directory, with a manifest of sizes, SHA-256 sums and row counts."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--out", required=True, type=Path, help="new (or empty) directory for the backup"
        )

    def handle(self, *args, **options):
        out = options["out"]
        try:
            manifest = backup_create(out_dir=out)
        except BackupError as exc:
            raise CommandError(f"Backup failed: {exc}") from exc
        files = ", ".join(
            f"{name} {info['size']:,} bytes" for name, info in manifest["files"].items()
        )
        counts = ", ".join(f"{table} {n}" for table, n in manifest["row_counts"].items())
        self.stdout.write(
            f"Database {manifest['database']} (PostgreSQL {manifest['server_version']}, "
            f"pg_dump {manifest['pg_dump']['version']}); commit {manifest['commit'] or 'unknown'}"
        )
        self.stdout.write(f"Files: {files}; {len(manifest['media_files'])} media file(s)")
        self.stdout.write(f"Rows: {counts}")
        self.stdout.write(self.style.SUCCESS(f"Backup written to {out}"))
