"""Usage records partitioned by month (issue #17 item 2, docs/architecture.md "Usage
partitions").

`compute_usagerecord` becomes a table `PARTITION BY RANGE (ended_at)`: one partition a
month, bounded at midnight in Asia/Shanghai (settings.TIME_ZONE, every city's zone
today), so that a month's statements, reconciliation and archive read one partition; a
DEFAULT partition takes what falls outside them (it still works; the beat task moves it).

What PostgreSQL requires, and what this migration does about it:
- A primary key (or any unique index) of a partitioned table must hold the partition
  key: in the database the key is (id, ended_at). Django's model state keeps `id` as the
  primary key (SeparateDatabaseAndState below): ids stay unique, taken from the one
  identity sequence (which still steps by 5,000, migration 0001), and every lookup by
  id still finds one row.
- The idempotency key `(data_center, record_id)`, one for all time, can no longer be a
  unique index on the records: it moves to `compute_usagerecordkey` (PRIMARY KEY
  (data_center_id, record_id)), written by the ingestion path in the same transaction
  (compute.ingest.keys). Its `usage_record_id` and `ended_at` find the record in its
  partition.
- A foreign key to a partitioned table must name its whole key: the settlement lines'
  foreign key to usage records loses its database constraint (the model says so and
  why); the other references to usage records had none already.

Existing rows are copied into the partitions (and their keys into the key table); the
old table is dropped. Partitions are made for every month of the existing rows (within
ten years of today) and for 24 months back to 3 ahead of today, so that the demo and
`seed_scale` (12 months back) land in real partitions. Later months are created ahead by
Celery beat (`compute.tasks.usage_partitions_task`) through
`suanli_usage_partition_create`, a SECURITY DEFINER function: the application's role
owns no table (portal/dbroles.py), and creating a partition needs the owner.

Kept from before: the identity column stepping by 5,000 (and its current value), the
column defaults (`compute.ingest` leaves status, void_reason, held and created_at to
them), the two indexes (now partitioned indexes; justified below). The table had no
trigger and no storage settings of its own (fillfactor and LZ4 are the redemptions' and
the batches').

Not reversible: going back would have to rebuild the unique key from the key table; a
database that needs to go back is restored from its backup.
"""

from django.db import migrations, models
import django.db.models.deletion

# Partitions are bounded in this zone (settings.TIME_ZONE; every city's today).
ZONE = "Asia/Shanghai"

PARTITION_TABLE = """
-- Foreign keys pointing at the table (the settlement lines') cannot point at a
-- partitioned table by id alone: dropped (the model keeps the relation, db_constraint=False).
DO $$
DECLARE c record;
BEGIN
    FOR c IN SELECT conname, conrelid::regclass AS tbl FROM pg_constraint
             WHERE confrelid = 'compute_usagerecord'::regclass AND contype = 'f' LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', c.tbl, c.conname);
    END LOOP;
END
$$;

ALTER TABLE compute_usagerecord RENAME TO compute_usagerecord_unpartitioned;
ALTER TABLE compute_usagerecord_unpartitioned
    RENAME CONSTRAINT compute_usagerecord_pkey TO compute_usagerecord_unpartitioned_pkey;
ALTER INDEX usage_dc_id RENAME TO usage_dc_id_unpartitioned;
ALTER INDEX usage_voucher_dc RENAME TO usage_voucher_dc_unpartitioned;
DO $$
BEGIN
    EXECUTE format('ALTER SEQUENCE %s RENAME TO compute_usagerecord_unpartitioned_id_seq',
                   pg_get_serial_sequence('compute_usagerecord_unpartitioned', 'id'));
END
$$;

-- The same columns in the same order, defaults and identity (a new sequence that steps
-- by 5,000, set to where the old one was below).
CREATE TABLE compute_usagerecord (
    LIKE compute_usagerecord_unpartitioned
    INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING STORAGE INCLUDING COMPRESSION
) PARTITION BY RANGE (ended_at);

SELECT setval(
    pg_get_serial_sequence('compute_usagerecord', 'id'),
    (SELECT last_value FROM compute_usagerecord_unpartitioned_id_seq),
    (SELECT is_called FROM compute_usagerecord_unpartitioned_id_seq)
);

-- (id, ended_at): the partition key must be in the primary key. Used by every lookup
-- by id (voiding, holds, the ingestion's corrections under the locks), with ended_at
-- where the caller knows it (the key table's look-ups prune to one partition).
ALTER TABLE compute_usagerecord ADD CONSTRAINT compute_usagerecord_pkey
    PRIMARY KEY (id, ended_at);
-- usage_dc_id (data_center_id, id): a data center's records in id order — the API's
-- `GET /usage/records` pages (compute.api.views.UsageRecordList, keyset by id) and
-- the console's lists; the statements' build filters a month's partition by it.
CREATE INDEX usage_dc_id ON compute_usagerecord (data_center_id, id);
-- usage_voucher_dc (voucher_id, data_center_id): a voucher's records — the company's
-- usage page and dashboard, the outcome report's usage, the integrity checks per
-- voucher (fast drain), exports of a company's vouchers.
CREATE INDEX usage_voucher_dc ON compute_usagerecord (voucher_id, data_center_id);

-- Rows outside every partition: still stored (and charged); the beat task moves them.
CREATE TABLE compute_usagerecord_default PARTITION OF compute_usagerecord DEFAULT;
"""

# Makes one month's partition; SECURITY DEFINER so that the application's role (which
# owns nothing) can call it from the beat task. The search path is fixed (a definer's
# function must not resolve names through the caller's path).
PARTITION_FUNCTION = """
DO $outer$
BEGIN
EXECUTE format($f$
CREATE OR REPLACE FUNCTION suanli_usage_partition_create(month date, tz text)
RETURNS text LANGUAGE plpgsql SECURITY DEFINER SET search_path = %I, pg_temp AS $fn$
DECLARE
    first date := date_trunc('month', month)::date;
    part text := 'compute_usagerecord_' || to_char(first, 'YYYY_MM');
    lo timestamptz := first::timestamp AT TIME ZONE tz;
    hi timestamptz := (first + 1 * interval '1 month')::timestamp AT TIME ZONE tz;
BEGIN
    -- There already, or archived (an archived month is not made again: its records
    -- arriving late land in DEFAULT, where they still count).
    IF to_regclass(part) IS NOT NULL
       OR EXISTS (SELECT 1 FROM compute_usagearchive a WHERE a.month = first) THEN
        RETURN NULL;
    END IF;
    -- Created apart and attached, rather than CREATE ... PARTITION OF: attaching takes
    -- only a SHARE UPDATE EXCLUSIVE lock on the parent, so batches keep being written.
    EXECUTE format('CREATE TABLE %%I (LIKE compute_usagerecord INCLUDING DEFAULTS'
                   ' INCLUDING STORAGE INCLUDING COMPRESSION)', part);
    -- Rows of this month that landed in DEFAULT move into it before it is attached.
    EXECUTE format('WITH moved AS (DELETE FROM compute_usagerecord_default'
                   ' WHERE ended_at >= $1 AND ended_at < $2 RETURNING *)'
                   ' INSERT INTO %%I SELECT * FROM moved', part) USING lo, hi;
    -- The bounds as a CHECK first: ATTACH then needs no scan of the new table.
    EXECUTE format('ALTER TABLE %%I ADD CONSTRAINT %%I CHECK (ended_at IS NOT NULL'
                   ' AND ended_at >= %%L AND ended_at < %%L)', part, part || '_bounds', lo, hi);
    EXECUTE format('ALTER TABLE compute_usagerecord ATTACH PARTITION %%I'
                   ' FOR VALUES FROM (%%L) TO (%%L)', part, lo, hi);
    EXECUTE format('ALTER TABLE %%I DROP CONSTRAINT %%I', part, part || '_bounds');
    RETURN part;
END
$fn$;
$f$, current_schema());
END
$outer$;
"""

FILL = f"""
DO $$
DECLARE
    zone constant text := '{ZONE}';
    this_month date := date_trunc('month', now() AT TIME ZONE zone)::date;
    first_month date;
    last_month date;
    m date;
BEGIN
    SELECT date_trunc('month', min(ended_at) AT TIME ZONE zone)::date,
           date_trunc('month', max(ended_at) AT TIME ZONE zone)::date
    INTO first_month, last_month
    FROM compute_usagerecord_unpartitioned
    WHERE ended_at >= now() - interval '10 years' AND ended_at < now() + interval '10 years';
    first_month := least(coalesce(first_month, this_month), this_month - interval '24 months');
    last_month := greatest(coalesce(last_month, this_month), this_month + interval '3 months');
    m := first_month;
    WHILE m <= last_month LOOP
        PERFORM suanli_usage_partition_create(m, zone);
        m := m + interval '1 month';
    END LOOP;
END
$$;

INSERT INTO compute_usagerecord SELECT * FROM compute_usagerecord_unpartitioned;
INSERT INTO compute_usagerecordkey (data_center_id, record_id, usage_record_id, ended_at)
    SELECT data_center_id, record_id, id, ended_at FROM compute_usagerecord_unpartitioned;
DROP TABLE compute_usagerecord_unpartitioned;
ANALYZE compute_usagerecord, compute_usagerecordkey;
"""


class Migration(migrations.Migration):

    dependencies = [
        ("compute", "0019_integrity_findings"),
    ]

    operations = [
        migrations.CreateModel(
            name="UsageArchive",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("month", models.DateField(help_text="The first day of the month.", unique=True, verbose_name="month")),
                ("starts_at", models.DateTimeField(verbose_name="from")),
                ("ends_at", models.DateTimeField(verbose_name="until")),
                ("table_name", models.CharField(max_length=63, verbose_name="table")),
                ("records", models.PositiveBigIntegerField(default=0, verbose_name="records")),
                ("covered_total", models.DecimalField(decimal_places=2, default=0, max_digits=14, verbose_name="covered total")),
                ("archived_at", models.DateTimeField(auto_now_add=True, verbose_name="archived at")),
            ],
            options={
                "verbose_name": "usage archive",
                "verbose_name_plural": "usage archives",
                "ordering": ["month"],
            },
        ),
        migrations.CreateModel(
            name="UsageRecordKey",
            fields=[
                ("pk", models.CompositePrimaryKey("data_center", "record_id", blank=True, editable=False, primary_key=True, serialize=False)),
                ("data_center", models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name="+", to="compute.datacenter")),
                ("record_id", models.CharField(max_length=64)),
                ("usage_record_id", models.BigIntegerField()),
                ("ended_at", models.DateTimeField()),
            ],
            options={
                "verbose_name": "usage record key",
                "verbose_name_plural": "usage record keys",
            },
        ),
        # Django's state: the unique key moves to the key table; the lines' foreign key
        # has no database constraint. The database: the table is rebuilt partitioned
        # (which drops both), with `id` still the primary key for Django (see above).
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveConstraint(
                    model_name="usagerecord",
                    name="usage_record_once_per_dc",
                ),
                migrations.AlterField(
                    model_name="settlementline",
                    name="usage_record",
                    field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.PROTECT, related_name="settlement_lines", to="compute.usagerecord"),
                ),
            ],
            database_operations=[migrations.RunSQL(PARTITION_TABLE)],
        ),
        migrations.RunSQL(PARTITION_FUNCTION),
        migrations.RunSQL(FILL),
    ]
