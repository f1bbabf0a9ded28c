"""The compute schema as of compute 0001–0015, squashed while nothing was released.

Besides what the models say, explicit steps (below, after the models):
- `compute_redemption` pages keep 30% free (fillfactor 70): the per-batch update of
  `covered_total` stays in place (HOT);
- usage records' identity sequence steps by 5,000, so one `nextval` reserves the ids of
  a whole batch's records (ids unique and in the order batches were written, not dense);
- batch bodies (up to 10 MB) and results are stored uncompressed (STORAGE EXTERNAL) and
  then, where the server has LZ4, compressed with it: ~100 kB instead of ~1.2 MB for a
  5,000-record body, and cheaper to write and read than pglz or no compression. A server
  without LZ4 keeps them uncompressed, which works the same.

`replaces` lets a database migrated with the old files carry on.
"""

from django.conf import settings
from django.db import migrations, models
import django.db.models.deletion
import django.db.models.functions.datetime

BATCH_TEXT_UNCOMPRESSED = """
ALTER TABLE compute_usagebatch
    ALTER COLUMN body SET STORAGE EXTERNAL,
    ALTER COLUMN results_json SET STORAGE EXTERNAL;
"""

BATCH_TEXT_LZ4 = """
DO $$
BEGIN
    ALTER TABLE compute_usagebatch
        ALTER COLUMN body SET STORAGE EXTENDED,
        ALTER COLUMN body SET COMPRESSION lz4,
        ALTER COLUMN results_json SET STORAGE EXTENDED,
        ALTER COLUMN results_json SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'this PostgreSQL has no LZ4: batch bodies stay uncompressed';
END
$$;
"""

SQL_STEPS = [
    migrations.RunSQL(
        "ALTER TABLE compute_redemption SET (fillfactor = 70)",
        "ALTER TABLE compute_redemption RESET (fillfactor)",
    ),
    migrations.RunSQL(
        "ALTER TABLE compute_usagerecord ALTER COLUMN id SET INCREMENT BY 5000",
        "ALTER TABLE compute_usagerecord ALTER COLUMN id SET INCREMENT BY 1",
    ),
    migrations.RunSQL(BATCH_TEXT_UNCOMPRESSED, migrations.RunSQL.noop),
    migrations.RunSQL(BATCH_TEXT_LZ4, migrations.RunSQL.noop),
]


class Migration(migrations.Migration):

    initial = True

    replaces = [
        ('compute', '0001_initial'),
        ('compute', '0002_registry_keys_redemptions_usage'),
        ('compute', '0003_usage_record_lean_indexes'),
        ('compute', '0004_batch_records_as_text'),
        ('compute', '0005_usage_record_fewer_constraints'),
        ('compute', '0006_sync_settlements_reminders'),
        ('compute', '0007_usage_hot_path_lean'),
        ('compute', '0008_batch_results_as_text'),
        ('compute', '0009_usage_record_lean'),
        ('compute', '0010_usage_record_ids_by_block'),
        ('compute', '0011_batch_text_lz4'),
        ('compute', '0012_copy_defaults'),
        ('compute', '0013_batch_failed_and_outbox'),
        ('compute', '0014_reminder_sent_to_vouchers'),
        ('compute', '0015_api_key_expiry'),
    ]

    dependencies = [
        ('portal', '0001_squashed_0004_initial'),
        ('vouchers', '0001_squashed_0010_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='ApiKey',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(blank=True, max_length=100, verbose_name='name')),
                ('prefix', models.CharField(max_length=16, unique=True, verbose_name='prefix')),
                ('key_hash', models.CharField(max_length=64, unique=True, verbose_name='key hash')),
                ('created_at', models.DateTimeField(auto_now_add=True, verbose_name='created at')),
                ('revoked_at', models.DateTimeField(blank=True, null=True, verbose_name='revoked at')),
                ('last_used_at', models.DateTimeField(blank=True, null=True, verbose_name='last used at')),
                ('expires_at', models.DateTimeField(blank=True, null=True, verbose_name='expires at')),
                ('expiry_reminded_at', models.DateTimeField(blank=True, null=True, verbose_name='expiry reminder sent')),
            ],
            options={
                'verbose_name': 'API key',
                'verbose_name_plural': 'API keys',
                'ordering': ['-created_at'],
            },
        ),
        migrations.CreateModel(
            name='DataCenter',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('slug', models.SlugField(max_length=40, unique=True, verbose_name='slug')),
                ('name_zh', models.CharField(max_length=120, verbose_name='name (Chinese)')),
                ('name_en', models.CharField(max_length=120, verbose_name='name (English)')),
                ('operator', models.CharField(max_length=120, verbose_name='operator')),
                ('hub', models.CharField(choices=[('jing_jin_ji', 'Beijing-Tianjin-Hebei'), ('yangtze_delta', 'Yangtze River Delta'), ('greater_bay', 'Guangdong-Hong Kong-Macao'), ('chengyu', 'Chengdu-Chongqing'), ('guizhou', 'Guizhou'), ('inner_mongolia', 'Inner Mongolia'), ('gansu', 'Gansu'), ('ningxia', 'Ningxia')], max_length=20, verbose_name='national hub')),
                ('cluster', models.CharField(help_text="e.g. Gui'an, Zhongwei", max_length=80, verbose_name='cluster')),
                ('state_run', models.BooleanField(default=True, verbose_name='state-run')),
                ('contact_email', models.EmailField(blank=True, max_length=254, verbose_name='contact email')),
                ('feed_url', models.URLField(blank=True, help_text='Where the portal pulls usage (api.md, the feed).', verbose_name='feed URL')),
                ('feed_token', models.CharField(blank=True, help_text='Bearer token the portal sends to the feed. Kept as given: it is theirs.', max_length=200, verbose_name='outbound token')),
                ('is_active', models.BooleanField(default=True, verbose_name='active')),
                ('feed_cursor', models.CharField(blank=True, max_length=500, verbose_name='feed cursor')),
                ('feed_healthy', models.BooleanField(default=True, verbose_name='feed healthy')),
                ('feed_error', models.CharField(blank=True, max_length=500, verbose_name='last feed error')),
                ('feed_checked_at', models.DateTimeField(blank=True, null=True, verbose_name='feed last checked')),
                ('created_at', models.DateTimeField(auto_now_add=True, verbose_name='created at')),
            ],
            options={
                'verbose_name': 'data center',
                'verbose_name_plural': 'data centers',
                'ordering': ['slug'],
            },
        ),
        migrations.CreateModel(
            name='Discrepancy',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(max_length=40, verbose_name='kind')),
                ('detail', models.TextField(verbose_name='detail')),
                ('found_at', models.DateTimeField(auto_now_add=True, verbose_name='found at')),
                ('resolved_at', models.DateTimeField(blank=True, null=True, verbose_name='resolved at')),
            ],
            options={
                'verbose_name': 'discrepancy',
                'verbose_name_plural': 'discrepancies',
                'ordering': ['-found_at', '-id'],
            },
        ),
        migrations.CreateModel(
            name='Redemption',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('status', models.CharField(choices=[('requested', 'Requested'), ('active', 'Active'), ('rejected', 'Rejected'), ('cancelled', 'Cancelled'), ('closed', 'Closed')], default='requested', max_length=10, verbose_name='status')),
                ('contract_ref', models.CharField(max_length=100, verbose_name='contract reference')),
                ('amount_cap', models.DecimalField(blank=True, decimal_places=2, max_digits=14, null=True, verbose_name='cap')),
                ('covered_total', models.DecimalField(decimal_places=2, default=0, max_digits=14, verbose_name='covered so far')),
                ('reason', models.CharField(blank=True, max_length=300, verbose_name='reason')),
                ('created_at', models.DateTimeField(auto_now_add=True, verbose_name='created at')),
                ('updated_at', models.DateTimeField(auto_now=True, verbose_name='updated at')),
            ],
            options={
                'verbose_name': 'redemption',
                'verbose_name_plural': 'redemptions',
                'ordering': ['-created_at', '-id'],
            },
        ),
        migrations.CreateModel(
            name='Registration',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('status', models.CharField(choices=[('active', 'Active'), ('suspended', 'Suspended'), ('ended', 'Ended')], default='active', max_length=10, verbose_name='status')),
                ('starts_on', models.DateField(verbose_name='starts on')),
                ('ends_on', models.DateField(blank=True, null=True, verbose_name='ends on')),
                ('created_at', models.DateTimeField(auto_now_add=True, verbose_name='created at')),
            ],
            options={
                'verbose_name': 'registration',
                'verbose_name_plural': 'registrations',
            },
        ),
        migrations.CreateModel(
            name='Settlement',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('period', models.DateField(help_text='The first day of the month.', verbose_name='period')),
                ('status', models.CharField(choices=[('draft', 'Draft'), ('issued', 'Issued'), ('confirmed', 'Confirmed'), ('paid', 'Paid')], default='draft', max_length=10, verbose_name='status')),
                ('records', models.PositiveIntegerField(default=0, verbose_name='records')),
                ('amount_total', models.DecimalField(decimal_places=2, default=0, max_digits=14, verbose_name='list price total')),
                ('covered_total', models.DecimalField(decimal_places=2, default=0, max_digits=14, verbose_name='covered total')),
                ('issued_at', models.DateTimeField(blank=True, null=True, verbose_name='issued at')),
                ('confirmed_at', models.DateTimeField(blank=True, null=True, verbose_name='confirmed at')),
                ('paid_at', models.DateTimeField(blank=True, null=True, verbose_name='paid at')),
                ('payment_ref', models.CharField(blank=True, max_length=100, verbose_name='payment reference')),
                ('created_at', models.DateTimeField(auto_now_add=True, verbose_name='created at')),
                ('updated_at', models.DateTimeField(auto_now=True, verbose_name='updated at')),
            ],
            options={
                'verbose_name': 'settlement',
                'verbose_name_plural': 'settlements',
                'ordering': ['-period', 'city', 'data_center'],
            },
        ),
        migrations.CreateModel(
            name='SettlementLine',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('usage', 'Usage'), ('adjustment', 'Adjustment')], default='usage', max_length=12, verbose_name='kind')),
                ('record_id', models.CharField(max_length=64, verbose_name='record')),
                ('voucher_code', models.CharField(max_length=24, verbose_name='voucher')),
                ('amount', models.DecimalField(decimal_places=2, max_digits=14, verbose_name='list price')),
                ('covered_amount', models.DecimalField(decimal_places=2, max_digits=14, verbose_name='covered')),
            ],
            options={
                'verbose_name': 'settlement line',
                'verbose_name_plural': 'settlement lines',
                'ordering': ['settlement', 'id'],
            },
        ),
        migrations.CreateModel(
            name='SyncRun',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('started_at', models.DateTimeField(auto_now_add=True, verbose_name='started at')),
                ('finished_at', models.DateTimeField(blank=True, null=True, verbose_name='finished at')),
                ('pages', models.PositiveIntegerField(default=0, verbose_name='pages')),
                ('records', models.PositiveIntegerField(default=0, verbose_name='records')),
                ('outcome', models.CharField(choices=[('running', 'Running'), ('ok', 'Succeeded'), ('failed', 'Failed'), ('skipped', 'Skipped (another sync was running)')], default='running', max_length=10, verbose_name='outcome')),
                ('error', models.TextField(blank=True, verbose_name='error')),
            ],
            options={
                'verbose_name': 'sync run',
                'verbose_name_plural': 'sync runs',
                'ordering': ['-started_at', '-id'],
            },
        ),
        migrations.CreateModel(
            name='UsageBatch',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('source', models.CharField(choices=[('push', 'Pushed'), ('pull', 'Pulled')], default='push', max_length=4)),
                ('status', models.CharField(choices=[('queued', 'Queued'), ('processing', 'Processing'), ('done', 'Done'), ('failed', 'Failed')], default='queued', max_length=10, verbose_name='status')),
                ('idempotency_key', models.CharField(blank=True, max_length=200)),
                ('body_hash', models.CharField(max_length=64)),
                ('received', models.PositiveIntegerField(verbose_name='received')),
                ('body', models.TextField(default='{"records": []}')),
                ('results_json', models.TextField(default='[]')),
                ('accepted', models.PositiveIntegerField(default=0, verbose_name='accepted')),
                ('duplicate', models.PositiveIntegerField(default=0, verbose_name='duplicates')),
                ('rejected', models.PositiveIntegerField(default=0, verbose_name='rejected')),
                ('attempts', models.PositiveSmallIntegerField(default=0)),
                ('failure_reason', models.CharField(blank=True, max_length=500, verbose_name='failure reason')),
                ('enqueued_at', models.DateTimeField(blank=True, null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True, verbose_name='received at')),
                ('started_at', models.DateTimeField(blank=True, null=True)),
                ('finished_at', models.DateTimeField(blank=True, null=True, verbose_name='finished at')),
            ],
            options={
                'verbose_name': 'usage batch',
                'verbose_name_plural': 'usage batches',
                'ordering': ['-created_at', '-id'],
            },
        ),
        migrations.CreateModel(
            name='UsageRecord',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('record_id', models.CharField(max_length=64)),
                ('started_at', models.DateTimeField()),
                ('ended_at', models.DateTimeField()),
                ('resource', models.CharField(max_length=64)),
                ('domestic', models.BooleanField()),
                ('quantity', models.DecimalField(decimal_places=3, max_digits=14)),
                ('amount', models.DecimalField(decimal_places=2, max_digits=14, verbose_name='list price')),
                ('covered_amount', models.DecimalField(decimal_places=2, max_digits=14, verbose_name='covered')),
                ('status', models.CharField(choices=[('accepted', 'Accepted'), ('void', 'Void')], db_default='accepted', default='accepted', max_length=10)),
                ('void_reason', models.CharField(blank=True, db_default='', max_length=300)),
                ('created_at', models.DateTimeField(db_default=django.db.models.functions.datetime.Now())),
                ('voided_at', models.DateTimeField(blank=True, null=True)),
            ],
            options={
                'verbose_name': 'usage record',
                'verbose_name_plural': 'usage records',
            },
        ),
            migrations.AddField(
            model_name='apikey',
            name='created_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='datacenter',
            name='operators',
            field=models.ManyToManyField(blank=True, related_name='operated_data_centers', to=settings.AUTH_USER_MODEL, verbose_name='operator users'),
        ),
        migrations.AddField(
            model_name='datacenter',
            name='programs',
            field=models.ManyToManyField(blank=True, related_name='data_centers', to='vouchers.program', verbose_name='programs whose vouchers it accepts'),
        ),
        migrations.AddField(
            model_name='apikey',
            name='data_center',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='api_keys', to='compute.datacenter'),
        ),
        migrations.AddField(
            model_name='discrepancy',
            name='city',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='discrepancies', to='portal.city'),
        ),
        migrations.AddField(
            model_name='discrepancy',
            name='data_center',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='discrepancies', to='compute.datacenter'),
        ),
        migrations.AddField(
            model_name='discrepancy',
            name='voucher',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='discrepancies', to='vouchers.voucher'),
        ),
        migrations.AddField(
            model_name='redemption',
            name='data_center',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='redemptions', to='compute.datacenter'),
        ),
        migrations.AddField(
            model_name='redemption',
            name='requested_by',
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='redemption',
            name='voucher',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='redemptions', to='vouchers.voucher'),
        ),
        migrations.AddField(
            model_name='registration',
            name='city',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='registrations', to='portal.city'),
        ),
        migrations.AddField(
            model_name='registration',
            name='data_center',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='registrations', to='compute.datacenter'),
        ),
        migrations.AddField(
            model_name='settlement',
            name='city',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='settlements', to='portal.city'),
        ),
        migrations.AddField(
            model_name='settlement',
            name='data_center',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='settlements', to='compute.datacenter'),
        ),
        migrations.AddField(
            model_name='settlement',
            name='issued_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='settlement',
            name='paid_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='settlementline',
            name='settlement',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='lines', to='compute.settlement'),
        ),
        migrations.AddField(
            model_name='syncrun',
            name='data_center',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='sync_runs', to='compute.datacenter'),
        ),
        migrations.AddField(
            model_name='usagebatch',
            name='data_center',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='batches', to='compute.datacenter'),
        ),
        migrations.AddField(
            model_name='usagerecord',
            name='batch',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='usage_records', to='compute.usagebatch'),
        ),
        migrations.AddField(
            model_name='usagerecord',
            name='data_center',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='compute.datacenter'),
        ),
        migrations.AddField(
            model_name='usagerecord',
            name='redemption',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='usage_records', to='compute.redemption'),
        ),
        migrations.AddField(
            model_name='usagerecord',
            name='reversal_entry',
            field=models.ForeignKey(db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='vouchers.ledgerentry'),
        ),
        migrations.AddField(
            model_name='usagerecord',
            name='voucher',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='usage_records', to='vouchers.voucher'),
        ),
        migrations.AddField(
            model_name='settlementline',
            name='usage_record',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='settlement_lines', to='compute.usagerecord'),
        ),
        migrations.AddIndex(
            model_name='redemption',
            index=models.Index(fields=['data_center', 'status'], name='redemption_dc_status'),
        ),
        migrations.AddIndex(
            model_name='redemption',
            index=models.Index(fields=['voucher', 'data_center'], name='redemption_voucher_dc'),
        ),
        migrations.AddConstraint(
            model_name='redemption',
            constraint=models.UniqueConstraint(condition=models.Q(('status__in', ['requested', 'active'])), fields=('voucher', 'data_center'), name='redemption_one_live_per_voucher_dc'),
        ),
        migrations.AddConstraint(
            model_name='redemption',
            constraint=models.CheckConstraint(condition=models.Q(('amount_cap__isnull', True), ('covered_total__lte', models.F('amount_cap')), _connector='OR'), name='redemption_within_cap'),
        ),
        migrations.AddConstraint(
            model_name='registration',
            constraint=models.UniqueConstraint(fields=('city', 'data_center'), name='registration_once'),
        ),
        migrations.AddConstraint(
            model_name='settlement',
            constraint=models.UniqueConstraint(fields=('city', 'data_center', 'period'), name='settlement_once_per_month'),
        ),
        migrations.AddConstraint(
            model_name='settlement',
            constraint=models.CheckConstraint(condition=models.Q(('period__day', 1)), name='settlement_period_first_day'),
        ),
        migrations.AddIndex(
            model_name='syncrun',
            index=models.Index(fields=['data_center', '-started_at'], name='syncrun_dc_started'),
        ),
        migrations.AddIndex(
            model_name='usagebatch',
            index=models.Index(condition=models.Q(('status__in', ('queued', 'processing'))), fields=['created_at'], name='batch_pending_by_age'),
        ),
        migrations.AddIndex(
            model_name='usagebatch',
            index=models.Index(fields=['data_center', '-created_at'], name='batch_dc_created'),
        ),
        migrations.AddConstraint(
            model_name='usagebatch',
            constraint=models.UniqueConstraint(condition=models.Q(('idempotency_key', ''), _negated=True), fields=('data_center', 'idempotency_key'), name='batch_idempotency_key_once'),
        ),
        migrations.AddIndex(
            model_name='usagerecord',
            index=models.Index(fields=['data_center', 'id'], name='usage_dc_id'),
        ),
        migrations.AddIndex(
            model_name='usagerecord',
            index=models.Index(fields=['voucher', 'data_center'], name='usage_voucher_dc'),
        ),
        migrations.AddConstraint(
            model_name='usagerecord',
            constraint=models.UniqueConstraint(fields=('data_center', 'record_id'), name='usage_record_once_per_dc'),
        ),
        migrations.AddConstraint(
            model_name='settlementline',
            constraint=models.UniqueConstraint(fields=('usage_record', 'kind'), name='settlement_line_once_per_kind'),
        ),
        *SQL_STEPS,
    ]
