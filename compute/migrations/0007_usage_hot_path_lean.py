"""Usage ingestion, leaner:
- a batch keeps its request body exactly as received (`body`, uncompressed text);
- usage records carry no per-row foreign-key checks on voucher and data center;
- redemptions' `updated_at` is not indexed and redemption pages keep room, so the
  per-batch update of `covered_total` stays in place (HOT);
- a record's content hash is computed in PostgreSQL by `suanli_usage_content_hash`
  (one definition, used by `compute.usage` and to rehash the records already stored).
"""

import django.db.models.deletion
from django.db import migrations, models

HASH_FUNCTION = """
CREATE OR REPLACE FUNCTION suanli_usage_content_hash(
    voucher text, started_at timestamptz, ended_at timestamptz, resource text,
    domestic boolean, quantity numeric, amount numeric
) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT md5(concat_ws('|', voucher, extract(epoch FROM started_at),
                         extract(epoch FROM ended_at), resource, domestic,
                         round(quantity, 3), round(amount, 2)))
$$
"""

REHASH = """
UPDATE compute_usagerecord r
SET content_hash = suanli_usage_content_hash(
    v.code, r.started_at, r.ended_at, r.resource, r.domestic, r.quantity, r.amount)
FROM vouchers_voucher v WHERE v.id = r.voucher_id
"""


class Migration(migrations.Migration):
    dependencies = [
        ("compute", "0006_sync_settlements_reminders"),
        ("vouchers", "0005_ledger_hot_path_lean"),
    ]

    operations = [
        migrations.RenameField("usagebatch", "records_json", "body"),
        migrations.AlterField(
            model_name="usagebatch",
            name="body",
            field=models.TextField(default='{"records": []}'),
        ),
        migrations.RunSQL(
            """UPDATE compute_usagebatch SET body = '{"records": ' || body || '}'""",
            """UPDATE compute_usagebatch SET body = (body::json -> 'records')::text""",
        ),
        migrations.RunSQL(
            "ALTER TABLE compute_usagebatch ALTER COLUMN body SET STORAGE EXTERNAL",
            "ALTER TABLE compute_usagebatch ALTER COLUMN body SET STORAGE EXTENDED",
        ),
        migrations.AlterField(
            model_name="redemption",
            name="updated_at",
            field=models.DateTimeField(auto_now=True, verbose_name="updated at"),
        ),
        migrations.RunSQL(
            "ALTER TABLE compute_redemption SET (fillfactor = 70)",
            "ALTER TABLE compute_redemption RESET (fillfactor)",
        ),
        migrations.AlterField(
            model_name="usagerecord",
            name="data_center",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="compute.datacenter",
            ),
        ),
        migrations.AlterField(
            model_name="usagerecord",
            name="voucher",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="usage_records",
                to="vouchers.voucher",
            ),
        ),
        migrations.RunSQL(HASH_FUNCTION, "DROP FUNCTION suanli_usage_content_hash"),
        migrations.RunSQL(REHASH, migrations.RunSQL.noop),
    ]
