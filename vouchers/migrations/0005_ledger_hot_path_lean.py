"""Usage ingestion writes a ledger entry per record: keep only the indexes the ledger is
read by, drop the per-row foreign-key check on `voucher` (see LedgerEntry's docstring),
and leave room in voucher pages so balance updates stay in place (HOT)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('vouchers', '0004_eligibility_choices'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='ledgerentry',
            name='ledger_usage_record',
        ),
        migrations.AlterField(
            model_name='ledgerentry',
            name='actor',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='actor'),
        ),
        migrations.AlterField(
            model_name='ledgerentry',
            name='voucher',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='entries', to='vouchers.voucher'),
        ),
        migrations.RunSQL(
            "ALTER TABLE vouchers_voucher SET (fillfactor = 70)",
            "ALTER TABLE vouchers_voucher RESET (fillfactor)",
        ),
    ]
