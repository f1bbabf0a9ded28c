"""Recompute every voucher's balance from its ledger entries; non-zero exit on mismatch."""

from django.core.management.base import BaseCommand, CommandError

from vouchers.ledger import ledger_verify


class Command(BaseCommand):
    help = "Check that every voucher's cached balance equals the sum of its ledger entries."

    def handle(self, *args, **options):
        problems = ledger_verify()
        if problems:
            for problem in problems:
                self.stderr.write(problem.describe())
            raise CommandError(f"{len(problems)} voucher(s) disagree with their ledger.")
        self.stdout.write(self.style.SUCCESS("Ledger reconciles: every balance matches."))
