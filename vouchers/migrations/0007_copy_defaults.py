"""Ledger entries: created_at defaults to the statement's time in the database, so the
COPY of `vouchers.ledger.ledger_charge_many` leaves it out (one timestamp less to
parse per entry, under the vouchers' locks)."""

import django.db.models.functions.datetime
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('vouchers', '0006_ledger_lean_ids_by_block'),
    ]

    operations = [
        migrations.AlterField(
            model_name='ledgerentry',
            name='created_at',
            field=models.DateTimeField(auto_now_add=True, db_default=django.db.models.functions.datetime.Now(), verbose_name='time'),
        ),
    ]
