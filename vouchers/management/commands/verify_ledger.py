"""Check the ledger: balances, the balance_after and keyed chains, charges against their
records, adjustments; with --anchors DIR also against the ledger's anchors. Non-zero
exit on any problem."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from portal.anchors import anchors_verify
from vouchers.ledger import ledger_verify
from vouchers.ledger_anchors import KIND


class Command(BaseCommand):
    help = (
        "Check that every voucher's balance equals the sum of its ledger entries, that "
        "its balance_after and keyed (HMAC) chains are intact and, with --anchors DIR, "
        "that the entries anchored there are all still in the database, unchanged."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--anchors",
            metavar="DIR",
            help="the anchor directory (AUDIT_ANCHOR_DIR, or a copy of it, or of the e-mails)",
        )

    def handle(self, *args, **options):
        problems = [problem.describe() for problem in ledger_verify()]
        if options["anchors"]:
            found = anchors_verify(Path(options["anchors"]), kinds={KIND})
            problems += [f"anchor {problem.describe()}" for problem in found]
        if problems:
            for problem in problems:
                self.stderr.write(problem)
            raise CommandError(f"{len(problems)} problem(s) in the ledger.")
        checked = " and its anchors" if options["anchors"] else ""
        self.stdout.write(
            self.style.SUCCESS(f"Ledger{checked} reconciles: every balance and chain matches.")
        )
