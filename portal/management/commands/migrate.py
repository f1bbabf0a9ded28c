"""`migrate` as the tables' owner (MIGRATE_DATABASE_URL), then the application role's
grants (portal.dbroles). Without MIGRATE_DATABASE_URL it is Django's migrate unchanged."""

from django.core.management.base import CommandError
from django.core.management.commands.migrate import Command as DjangoMigrate
from django.db import DEFAULT_DB_ALIAS

from portal.dbroles import RoleError, app_role_grant, app_role_name, as_owner


class Command(DjangoMigrate):
    help = DjangoMigrate.help + (
        " Runs as MIGRATE_DATABASE_URL's role when set, then grants DATABASE_URL's role "
        "the application's privileges (grant_app_role)."
    )

    def handle(self, *args, **options):
        alias = options["database"]
        role = app_role_name(alias) if alias == DEFAULT_DB_ALIAS else None
        if role is None:
            return super().handle(*args, **options)
        with as_owner(alias):
            super().handle(*args, **options)
            try:
                tables = app_role_grant(role, alias)
            except RoleError as exc:
                raise CommandError(str(exc)) from exc
        if options["verbosity"] >= 1:
            self.stdout.write(
                f"Granted {role} the application's privileges "
                f"(insert and read only: {', '.join(tables)})."
            )
