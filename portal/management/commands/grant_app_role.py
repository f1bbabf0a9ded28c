"""Give the application's role least privilege (portal.dbroles); `migrate` does this
itself when MIGRATE_DATABASE_URL is set."""

from django.core.management.base import BaseCommand, CommandError

from portal.dbroles import RoleError, app_role_grant, as_owner


class Command(BaseCommand):
    help = (
        "Grant ROLE what the portal needs and no more: rows of every table, but only "
        "INSERT and SELECT on the append-only ones (audit trail, ledger), no TRUNCATE, "
        "owning nothing. Run as the owner (MIGRATE_DATABASE_URL, else DATABASE_URL) "
        "after migrate."
    )

    def add_arguments(self, parser):
        parser.add_argument("role", help="the application's PostgreSQL role (DATABASE_URL's)")
        parser.add_argument("--database", default="default")

    def handle(self, *args, **options):
        with as_owner(options["database"]):
            try:
                tables = app_role_grant(options["role"], options["database"])
            except RoleError as exc:
                raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"{options['role']}: rows of every table; insert and read only on "
                f"{', '.join(tables)}."
            )
        )
