"""The ledger's keyed chain (issue #15 item 5, vouchers/ledger_chain.py): every entry
names its key and carries its mac, every voucher its chain's head; the entries written
before are sealed here, under AUDIT_CHAIN_KEY, by the tables' owner that migrates
(docs/deploy.md: stop the ledger's writers for this one)."""

import django.db.models.functions.datetime
import django.utils.timezone
from django.db import migrations, models


def seal_existing(apps, schema_editor):
    from vouchers.ledger_chain import ledger_seal_existing

    ledger_seal_existing(schema_editor.connection)


class Migration(migrations.Migration):

    dependencies = [
        ('vouchers', '0014_application_counts'),
    ]

    operations = [
        migrations.AddField(
            model_name='ledgerentry',
            name='key_id',
            field=models.CharField(blank=True, db_default='', default='', max_length=12, verbose_name='key'),
        ),
        migrations.AddField(
            model_name='ledgerentry',
            name='mac',
            field=models.CharField(blank=True, db_default='', default='', max_length=64, verbose_name='MAC'),
        ),
        migrations.AddField(
            model_name='voucher',
            name='ledger_head',
            field=models.CharField(blank=True, default='', max_length=64, verbose_name='ledger chain head'),
        ),
        migrations.AlterField(
            model_name='ledgerentry',
            name='created_at',
            field=models.DateTimeField(db_default=django.db.models.functions.datetime.Now(), default=django.utils.timezone.now, editable=False, verbose_name='time'),
        ),
        migrations.RunPython(seal_existing, migrations.RunPython.noop),
    ]
