"""Seed the demo: cities, staff and startups (portal), then data centers (compute).

Lives in `compute` because it is the top of the dependency chain (portal ← vouchers ←
compute) and may call every app's seeding. Idempotent: run it as often as you like.
"""

from django.core.management.base import BaseCommand
from django.db import transaction

from compute.demo import operator_email, seed_compute, seed_compute_links
from compute.integrity.demo import seed_integrity
from portal.demo import describe_logins, seed_portal
from portal.locks import single_writer
from vouchers.demo import seed_outcome_reports, seed_vouchers


class Command(BaseCommand):
    help = "Create the demo data (idempotent)."

    def handle(self, *args, **options):
        # One transaction, before anything else writes (portal.locks.single_writer).
        with transaction.atomic(), single_writer():
            cities = seed_portal()
            centers = seed_compute()
            applications = seed_vouchers()
            seed_compute_links()
            # One outcome report accepted (验收), after the vouchers are issued.
            seed_outcome_reports()
            seed_integrity()
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo ready: {len(cities)} cities, {len(centers)} data centers, "
                f"{applications} applications."
            )
        )
        for line in describe_logins():
            self.stdout.write(f"  {line}")
        self.stdout.write(
            "  data-center operators: " + ", ".join(operator_email(s) for s in sorted(centers))
        )
