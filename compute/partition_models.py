"""The usage records' partitions' companions (migration 0020, docs/architecture.md
"Usage partitions"): the idempotency key table and the months archived."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from vouchers.models import money_field


class UsageRecordKey(models.Model):
    """The idempotency key of usage records, `(data_center, record_id)`, once for all
    time: the usage records' table is partitioned by month, where a unique index can
    only hold within one month. Written with the records, in the same transaction
    (`compute.ingest.keys`); a record_id sent again, however many months later, fails
    here (a duplicate or a conflict), never a second charge. Where the record is
    (`usage_record_id`, `ended_at`: its primary key in the partitioned table) finds it
    in one partition."""

    pk = models.CompositePrimaryKey("data_center", "record_id")
    # No database constraint: written by COPY on the hot path (see UsageRecord).
    data_center = models.ForeignKey(
        "compute.DataCenter",
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    record_id = models.CharField(max_length=64)
    usage_record_id = models.BigIntegerField()
    ended_at = models.DateTimeField()

    class Meta:
        verbose_name = _("usage record key")
        verbose_name_plural = _("usage record keys")

    def __str__(self) -> str:
        return f"{self.data_center_id}:{self.record_id}"


class UsageArchive(models.Model):
    """A month of usage records detached from the partitioned table by
    `manage.py archive_usage` (its partition lives on as a table of its own until it is
    dumped and dropped): what it held, for the record and for the ledger's checks (a
    charge whose record's key ends inside an archived month is not "without its
    record": compute.jobs)."""

    month = models.DateField(_("month"), unique=True, help_text=_("The first day of the month."))
    starts_at = models.DateTimeField(_("from"))
    ends_at = models.DateTimeField(_("until"))
    table_name = models.CharField(_("table"), max_length=63)
    records = models.PositiveBigIntegerField(_("records"), default=0)
    covered_total = money_field(_("covered total"), default=0)
    archived_at = models.DateTimeField(_("archived at"), auto_now_add=True)

    class Meta:
        verbose_name = _("usage archive")
        verbose_name_plural = _("usage archives")
        ordering = ["month"]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m}"
