from django.core.management.base import BaseCommand, CommandError

from portal.audit import audit_chain_verify


class Command(BaseCommand):
    help = "Verify the audit trail's hash chains; exit non-zero naming the first broken link."

    def handle(self, *args, **options):
        problems = audit_chain_verify()
        if problems:
            for problem in problems:
                self.stderr.write(f"BROKEN: {problem.describe()}")
            raise CommandError(f"{len(problems)} audit chain(s) broken.")
        self.stdout.write(self.style.SUCCESS("Audit chains intact."))
