"""Restore a backup into a throw-away database and check it (portal.backup)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from portal.backup import BackupError, Check, backup_restore_drill, manifest_read


class Command(BaseCommand):
    help = (
        "Restore a backup into a new database on the same server, check checksums, row "
        "counts and media, run verify_ledger and verify_audit on it, then drop it."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--from", dest="source", required=True, type=Path, help="a backup_create directory"
        )
        parser.add_argument(
            "--keep",
            action="store_true",
            help="keep the restored database and extracted media for inspection",
        )

    def handle(self, *args, **options):
        def show(check: Check) -> None:
            status = self.style.SUCCESS("ok  ") if check.ok else self.style.ERROR("FAIL")
            self.stdout.write(f"{status} {check.name}: {check.detail}")

        try:
            manifest = manifest_read(options["source"])
            self.stdout.write(
                f"Backup of {manifest['database']} taken {manifest['created_at']}, "
                f"commit {manifest.get('commit') or 'unknown'}"
            )
            report = backup_restore_drill(
                backup_dir=options["source"], keep=options["keep"], on_check=show
            )
        except BackupError as exc:
            raise CommandError(f"Restore drill failed: {exc}") from exc
        if report.database:
            if report.kept:
                self.stdout.write(f"Kept database {report.database}, media in {report.media_dir}")
            else:
                self.stdout.write(f"Dropped database {report.database}")
        if not report.ok:
            raise CommandError(f"Restore drill failed: {', '.join(report.failed)}.")
        self.stdout.write(self.style.SUCCESS("Restore drill passed."))
