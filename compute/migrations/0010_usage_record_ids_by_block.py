"""Usage record ids are taken a block per batch: the identity sequence steps by 5,000
(a batch's most records), so one `nextval` reserves the ids of a whole batch's records
(`compute.usage._write_records`), instead of 5,000 calls. Ids stay unique and in the
order batches were written; they are not dense. Nothing else creates usage records."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("compute", "0009_usage_record_lean")]

    operations = [
        migrations.RunSQL(
            "ALTER TABLE compute_usagerecord ALTER COLUMN id SET INCREMENT BY 5000",
            "ALTER TABLE compute_usagerecord ALTER COLUMN id SET INCREMENT BY 1",
        ),
    ]
