"""Load a city at national scale for the dashboards' benchmark (compute/scale.py)."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from compute.scale import seed_scale
from portal.errors import DomainError


class Command(BaseCommand):
    help = (
        "Load a city with N applications, vouchers and usage records (with their ledger "
        "charges) by COPY; verify_ledger and verify_audit pass afterwards. Refuses a city "
        "that already has scale data."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--city", default="scale", help="city slug (created if missing)")
        parser.add_argument("--applications", type=int, default=100_000)
        parser.add_argument("--vouchers", type=int, default=20_000)
        parser.add_argument("--records", type=int, default=2_000_000)
        parser.add_argument("--seed", type=int, default=2026, help="random seed")

    def handle(self, *args, **options) -> None:
        started = time.monotonic()

        def progress(message: str) -> None:
            self.stdout.write(f"[{time.monotonic() - started:7.1f} s] {message}")

        try:
            result = seed_scale(
                city_slug=options["city"],
                applications=options["applications"],
                vouchers=options["vouchers"],
                records=options["records"],
                seed=options["seed"],
                progress=progress,
            )
        except DomainError as error:
            raise CommandError(error.message) from error
        self.stdout.write(
            self.style.SUCCESS(
                f"City {result.city.slug}: {result.applications:,} applications, "
                f"{result.vouchers:,} vouchers, {result.records:,} usage records, "
                f"{result.charges:,} ledger charges in {time.monotonic() - started:.0f} s."
            )
        )
        self.stdout.write("  logins (demo password): " + ", ".join(result.logins))
