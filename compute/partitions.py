"""The usage records' monthly partitions (migration 0020, docs/architecture.md "Usage
partitions"): finding a record by its key, creating months ahead (Celery beat), and
archiving closed months (`manage.py archive_usage`).

Partitions are bounded at midnight in settings.TIME_ZONE (Asia/Shanghai), the zone the
statements' months are cut in for every city today.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.utils.translation import gettext as _

from compute.models import DataCenter, UsageArchive, UsageRecord, UsageRecordKey
from portal.audit import Actor, audit_record
from portal.dbroles import as_owner
from portal.errors import DomainError

PARENT = "compute_usagerecord"
DEFAULT_PARTITION = "compute_usagerecord_default"
# Months created ahead by the beat task (this month and the next ones).
MONTHS_AHEAD = 3
# DDL waits at most this long for a lock: behind a long transaction it gives up (and
# runs again at the next beat) rather than queueing every batch behind itself.
LOCK_TIMEOUT = "10s"


def partition_name(month: date) -> str:
    return f"{PARENT}_{month:%Y_%m}"


def month_add(month: date, months: int) -> date:
    index = month.year * 12 + month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """The instants a month's partition holds: [first midnight, next first midnight)."""
    zone = ZoneInfo(settings.TIME_ZONE)
    start = datetime(month.year, month.month, 1, tzinfo=zone)
    end = month_add(month, 1)
    return start, datetime(end.year, end.month, 1, tzinfo=zone)


def this_month() -> date:
    now = datetime.now(ZoneInfo(settings.TIME_ZONE))
    return date(now.year, now.month, 1)


def usage_record_by_key(
    data_center: DataCenter, record_id: str, *, lock: bool = False
) -> UsageRecord | None:
    """A data center's record by its record_id, through the key table (the records'
    table has no index on record_id: the key is unique in the key table only), then in
    its one partition by (id, ended_at). None if never sent, or archived."""
    key = (
        UsageRecordKey.objects.filter(data_center=data_center, record_id=record_id)
        .values_list("usage_record_id", "ended_at")
        .first()
    )
    if key is None:
        return None
    records = UsageRecord.objects.filter(pk=key[0], ended_at=key[1])
    return (records.select_for_update() if lock else records).first()


@dataclass
class PartitionReport:
    """What `usage_partitions_ensure` did: partitions created, and records left in the
    DEFAULT partition (of archived months; counted, not moved)."""

    created: list[str] = field(default_factory=list)
    default_rows: int = 0


def usage_partitions_ensure(*, ahead: int = MONTHS_AHEAD) -> PartitionReport:
    """Create this month's partition and the next `ahead` months' where missing, and one
    for each month of records that landed in DEFAULT (moving them into it), except
    archived months. Idempotent; each month in a transaction of its own, so one held
    back by a lock does not undo the others."""
    report = PartitionReport()
    first = this_month()
    months = {month_add(first, n) for n in range(ahead + 1)}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT date_trunc('month', ended_at AT TIME ZONE %s)::date"
            " FROM compute_usagerecord_default",
            [settings.TIME_ZONE],
        )
        months |= {row[0] for row in cursor.fetchall()}
    archived = set(UsageArchive.objects.values_list("month", flat=True))
    for month in sorted(months - archived):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            cursor.execute(
                "SELECT suanli_usage_partition_create(%s, %s)", [month, settings.TIME_ZONE]
            )
            name = cursor.fetchone()[0]
        if name:
            report.created.append(name)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM compute_usagerecord_default")
        report.default_rows = cursor.fetchone()[0]
    return report


def usage_partition_list() -> list[tuple[str, str]]:
    """(partition, its bounds as PostgreSQL writes them) for every attached partition."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = %s::regclass ORDER BY c.relname",
            [PARENT],
        )
        return list(cursor.fetchall())


# Why a month is not closed, each a count over its one partition (pruned by ended_at):
# statements still drafts, records accepted but on no issued statement (not billed yet,
# or held by an integrity finding), records voided after they were billed whose
# adjustment is not on an issued statement yet.
_OPEN_DRAFTS = "SELECT count(*) FROM compute_settlement WHERE period = %s AND status = 'draft'"
_OPEN_RECORDS = """
SELECT
  count(*) FILTER (WHERE r.status = 'accepted' AND (r.held OR NOT EXISTS (
      SELECT 1 FROM compute_settlementline l JOIN compute_settlement s ON s.id = l.settlement_id
      WHERE l.usage_record_id = r.id AND l.kind = 'usage' AND s.status <> 'draft'))),
  count(*) FILTER (WHERE r.status = 'void' AND EXISTS (
      SELECT 1 FROM compute_settlementline l JOIN compute_settlement s ON s.id = l.settlement_id
      WHERE l.usage_record_id = r.id AND l.kind = 'usage' AND s.status <> 'draft')
    AND NOT EXISTS (
      SELECT 1 FROM compute_settlementline l JOIN compute_settlement s ON s.id = l.settlement_id
      WHERE l.usage_record_id = r.id AND l.kind = 'adjustment' AND s.status <> 'draft')),
  count(*),
  coalesce(sum(r.covered_amount) FILTER (WHERE r.status = 'accepted'), 0)
FROM compute_usagerecord r
WHERE r.ended_at >= %s AND r.ended_at < %s
"""


@dataclass
class MonthState:
    month: date
    partition: str
    records: int
    covered: Decimal
    reasons: list[str]

    @property
    def closed(self) -> bool:
        return not self.reasons


def usage_month_state(month: date) -> MonthState:
    """Whether a month's records are settled: every statement of the month issued
    (confirmed or paid), every accepted record on an issued statement, every record
    voided after it was billed adjusted on one."""
    start, end = month_bounds(month)
    with connection.cursor() as cursor:
        cursor.execute(_OPEN_DRAFTS, [month])
        drafts = cursor.fetchone()[0]
        cursor.execute(_OPEN_RECORDS, [start, end])
        unbilled, unadjusted, records, covered = cursor.fetchone()
    reasons = []
    if drafts:
        reasons.append(_("%(n)d statement(s) of the month are still drafts") % {"n": drafts})
    if unbilled:
        reasons.append(
            _("%(n)d accepted record(s) are on no issued statement (late or held)")
            % {"n": unbilled}
        )
    if unadjusted:
        reasons.append(
            _("%(n)d record(s) voided after billing have no issued adjustment") % {"n": unadjusted}
        )
    return MonthState(month, partition_name(month), records, covered, reasons)


@dataclass
class ArchiveResult:
    archived: list[MonthState]
    refused: list[MonthState]


def usage_archive(*, before: date, actor: Actor, dry_run: bool = False) -> ArchiveResult:
    """Detach the partitions of every month before `before`, oldest first, if each one's
    records are settled (`usage_month_state`); if one is not, none is (the refused
    months say why). The partition lives on as a table of its own (the runbook dumps
    and drops it); each month is recorded (`UsageArchive`) and audited. With `dry_run`,
    says what it would do and changes nothing."""
    attached = {name for name, _bounds in usage_partition_list()}
    months = sorted(
        date(int(name[-7:-3]), int(name[-2:]), 1)
        for name in attached
        if name != DEFAULT_PARTITION and name[-7:-3].isdigit()
    )
    states = [usage_month_state(m) for m in months if m < before.replace(day=1)]
    refused = [state for state in states if not state.closed]
    if refused:
        return ArchiveResult([], refused)
    if not dry_run:
        for state in states:
            _detach(state, actor)
    return ArchiveResult(states, [])


def _detach(state: MonthState, actor: Actor) -> None:
    start, end = month_bounds(state.month)
    # Detaching needs the table's owner (the application's role owns nothing).
    with as_owner(), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        cursor.execute(f"ALTER TABLE {PARENT} DETACH PARTITION {state.partition}")
        archive = UsageArchive.objects.create(
            month=state.month,
            starts_at=start,
            ends_at=end,
            table_name=state.partition,
            records=state.records,
            covered_total=state.covered,
        )
        audit_record(
            action="usage.archive",
            actor=actor,
            target=archive,
            data={
                "month": f"{state.month:%Y-%m}",
                "table": state.partition,
                "records": state.records,
                "covered_total": str(state.covered),
            },
        )


def archive_before_parse(value: str) -> date:
    """`YYYY-MM` → its first day; a clear error otherwise."""
    try:
        year, month = (int(part) for part in value.split("-"))
        return date(year, month, 1)
    except (ValueError, TypeError) as error:
        raise DomainError(_("The month is written YYYY-MM, e.g. 2026-11.")) from error
