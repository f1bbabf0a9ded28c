"""Rollups of usage, kept by the ingestion pipeline in the same transaction as the charges
(compute/rollups.py), so that the program and data-center dashboards read a few thousand
rows instead of millions of usage records (docs/performance.md, "Dashboards"). A
company's dashboard reads its own vouchers' records instead (an index range each): a
rollup per voucher × day × accelerator cost a third of applying a batch.

Each row is a sum of usage records that are accepted and not void; the records (and,
behind them, the ledger) stay the truth: `rollups_verify` recomputes every row from the
records, `rollups_rebuild` writes them again. Keys are enforced by unique constraints, the
target of the ingestion's `INSERT … ON CONFLICT DO UPDATE`; no foreign-key constraints,
for the same reason as on the records themselves (one check per row on the hot path).
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


def _sum_field(places: int = 2) -> models.DecimalField:
    return models.DecimalField(max_digits=18, decimal_places=places, default=0)


def _fk(to: str) -> models.ForeignKey:
    return models.ForeignKey(
        to, on_delete=models.DO_NOTHING, related_name="+", db_index=False, db_constraint=False
    )


class ProgramUsageDay(models.Model):
    """A program's usage on one day (in its city's time) at one data center, domestic
    chips or not: the program dashboard's usage over time. Shared by every batch of the
    program, so a batch writes its rows last and in key order (no deadlock)."""

    program = _fk("vouchers.Program")
    day = models.DateField()
    data_center = _fk("compute.DataCenter")
    domestic = models.BooleanField()
    records = models.IntegerField(default=0)
    quantity = _sum_field(3)
    amount = _sum_field()
    covered = _sum_field()

    class Meta:
        verbose_name = _("program daily usage")
        constraints = [
            models.UniqueConstraint(
                fields=["program", "day", "data_center", "domestic"], name="program_usage_day_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.program_id} {self.day} {self.data_center_id}"


class CompanyUsage(models.Model):
    """A company's usage under one program, all time: the program dashboard's top
    companies by spend, a few thousand rows per program however many records."""

    program = _fk("vouchers.Program")
    company = _fk("vouchers.Company")
    records = models.IntegerField(default=0)
    quantity = _sum_field(3)
    amount = _sum_field()
    covered = _sum_field()

    class Meta:
        verbose_name = _("company usage")
        constraints = [
            models.UniqueConstraint(fields=["program", "company"], name="company_usage_key")
        ]

    def __str__(self) -> str:
        return f"{self.program_id} {self.company_id}"


class IngestDay(models.Model):
    """How a data center's records came out, per day their batch arrived (in the
    portal's time zone): `outcome` is `accepted`, `duplicate` or a rejection code."""

    data_center = _fk("compute.DataCenter")
    day = models.DateField()
    outcome = models.CharField(max_length=40)
    records = models.IntegerField(default=0)

    class Meta:
        verbose_name = _("daily ingestion")
        constraints = [
            models.UniqueConstraint(fields=["data_center", "day", "outcome"], name="ingest_day_key")
        ]

    def __str__(self) -> str:
        return f"{self.data_center_id} {self.day} {self.outcome}"
