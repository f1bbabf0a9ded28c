from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from portal.anchors import anchors_verify
from portal.audit import audit_chain_verify


class Command(BaseCommand):
    help = (
        "Verify the audit trail's keyed hash chains and, with --anchors DIR, that every "
        "head anchored there is still in the database; exit non-zero naming each problem."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--anchors",
            metavar="DIR",
            help="the anchor directory (AUDIT_ANCHOR_DIR, or a copy of it, or of the e-mails)",
        )

    def handle(self, *args, **options):
        problems = [problem.describe() for problem in audit_chain_verify()]
        if options["anchors"]:
            problems += [problem.describe() for problem in anchors_verify(Path(options["anchors"]))]
        if problems:
            for problem in problems:
                self.stderr.write(f"BROKEN: {problem}")
            raise CommandError(f"{len(problems)} audit problem(s) found.")
        checked = " and their anchors" if options["anchors"] else ""
        self.stdout.write(self.style.SUCCESS(f"Audit chains{checked} intact."))
