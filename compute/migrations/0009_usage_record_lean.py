"""Usage records lose their content hash and their link to the charge entry.

- A record_id sent again is compared with the stored record field by field
  (`compute.usage._Stored.says`), repeats within a batch in Python: hashing every record
  cost about a fifth of applying a batch.
- The charge entry already points at its record (`LedgerEntry.usage_record_id`), and
  nothing read the way back; without it, records are written before the vouchers are
  locked (their entries' ids can only be taken under the locks)."""

import importlib

from django.db import migrations

# Reversing restores the column, the function and the hashes as 0007 made them.
_0007 = importlib.import_module("compute.migrations.0007_usage_hot_path_lean")


class Migration(migrations.Migration):
    dependencies = [("compute", "0008_batch_results_as_text")]

    operations = [
        # Reversed last, once the column and the function are back.
        migrations.RunSQL(migrations.RunSQL.noop, _0007.REHASH),
        migrations.RunSQL("DROP FUNCTION suanli_usage_content_hash", _0007.HASH_FUNCTION),
        migrations.RemoveField(model_name="usagerecord", name="content_hash"),
        migrations.RemoveField(model_name="usagerecord", name="charge_entry"),
    ]
