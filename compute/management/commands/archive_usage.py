"""Archive closed months of usage records: detach their partitions (compute.partitions,
docs/operations.md "Archiving usage months")."""

from django.core.management.base import BaseCommand, CommandError, no_translations

from compute.partitions import archive_before_parse, usage_archive
from portal.audit import SYSTEM
from portal.errors import DomainError


class Command(BaseCommand):
    help = (
        "Detach the usage partitions of months before --before whose statements are all"
        " issued (confirmed or paid) and whose records are all billed; if one month is not,"
        " archives none and says why."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--before", required=True, metavar="YYYY-MM", help="archive months before this one"
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="say what would be archived; change nothing"
        )

    @no_translations  # an operator's command: its output in one language, English
    def handle(self, *args, before: str, dry_run: bool = False, **options):
        try:
            month = archive_before_parse(before)
        except DomainError as error:
            raise CommandError(error.message) from None
        result = usage_archive(before=month, actor=SYSTEM, dry_run=dry_run)
        verb = "would detach" if dry_run else "detached"
        for state in result.archived:
            self.stdout.write(
                f"{state.month:%Y-%m}: {verb} {state.partition}"
                f" ({state.records} records, covered ¥{state.covered})"
            )
        if not result.archived and not result.refused:
            self.stdout.write(f"No attached month before {month:%Y-%m}: nothing to archive.")
        if result.refused:
            raise CommandError(
                "Nothing archived: "
                + " ".join(
                    f"{state.month:%Y-%m} is not settled ({'; '.join(state.reasons)})."
                    for state in result.refused
                )
            )
