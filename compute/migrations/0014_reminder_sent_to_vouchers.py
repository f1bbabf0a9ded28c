# ReminderSent now lives in the vouchers app (vouchers 0008): copy the reminders already
# sent, so none goes out twice, then drop compute's table. Compute may depend on vouchers,
# not the other way round, so the copy is made from this side.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('compute', '0013_batch_failed_and_outbox'),
        ('vouchers', '0008_reminder_sent'),
    ]

    operations = [
        migrations.RunSQL(
            sql=(
                'INSERT INTO vouchers_remindersent (kind, key, sent_at) '
                'SELECT kind, key, sent_at FROM compute_remindersent ORDER BY id '
                'ON CONFLICT (kind, key) DO NOTHING'
            ),
            reverse_sql=(
                'INSERT INTO compute_remindersent (kind, key, sent_at) '
                'SELECT kind, key, sent_at FROM vouchers_remindersent ORDER BY id'
            ),
        ),
        migrations.DeleteModel(
            name='ReminderSent',
        ),
    ]
