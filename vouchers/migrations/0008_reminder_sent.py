# ReminderSent moves here from compute: the reminders it guards are the vouchers app's
# (vouchers.jobs). Its rows are copied over, and the old table dropped, by compute 0014.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('vouchers', '0007_copy_defaults'),
    ]

    operations = [
        migrations.CreateModel(
            name='ReminderSent',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(max_length=40)),
                ('key', models.CharField(max_length=100)),
                ('sent_at', models.DateTimeField(auto_now_add=True)),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('kind', 'key'), name='reminder_sent_once')],
            },
        ),
    ]
