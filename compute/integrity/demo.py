"""Demo data of the integrity checks: every demo data center declares its cards per
model for each city it serves, every program bands the simulated prices (so ordinary
traffic raises nothing) and holds flagged charges, and one data center (`INFLATING`)
has its simulator bill impossible hours (`run_datacenter_sim --demo` arms the `inflate`
fault there), which the capacity check, run every few minutes in the demo, finds."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from compute.simulation import ACCELERATORS

INFLATING = "horinger"
# Cards per model per city registration: far above what the demo's usage needs at any
# hour, far below what an inflated record claims (compute.simulator.INFLATED_CARDS).
DEMO_CARDS = 20_000
# The demo runs the nightly checks this often, so the findings show while it runs.
DEMO_CHECK_MINUTES = 5


def seed_integrity() -> int:
    """Inventory, bands and rules (idempotent). Returns the inventory rows declared."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    from compute.integrity.models import IntegrityRules, Inventory, PriceBand
    from compute.models import Registration
    from vouchers.models import Program

    declared = 0
    for registration in Registration.objects.all():
        for model, _domestic, _prices in ACCELERATORS:
            _item, new = Inventory.objects.get_or_create(
                registration=registration,
                accelerator=model,
                valid_from=date(2026, 1, 1),
                defaults={"cards": DEMO_CARDS},
            )
            declared += new
    for program in Program.objects.all():
        IntegrityRules.objects.get_or_create(
            program=program, defaults={"check_plan": False, "hold_charges": True}
        )
        for model, _domestic, (low, high) in ACCELERATORS:
            # The simulated prices run from low to high: the middle ± what reaches both.
            middle = Decimal(low + high) / 2
            PriceBand.objects.get_or_create(
                program=program,
                accelerator=model,
                defaults={
                    "reference_price": middle,
                    "tolerance_percent": ((Decimal(high) - middle) / middle * 100 + 1).quantize(
                        Decimal("0.01")
                    ),
                },
            )
    every, _ = IntervalSchedule.objects.get_or_create(
        every=DEMO_CHECK_MINUTES, period=IntervalSchedule.MINUTES
    )
    PeriodicTask.objects.update_or_create(
        name="integrity checks (demo)",
        defaults={"task": "compute.tasks.integrity_nightly_task", "interval": every},
    )
    return declared
