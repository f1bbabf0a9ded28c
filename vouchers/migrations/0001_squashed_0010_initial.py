"""The vouchers schema as of vouchers 0001–0010, squashed while nothing was released.

Besides what the models say, explicit steps (below, after the models):
- the trigger that makes `vouchers_ledgerentry` append-only (the function comes from
  portal's initial migration): a correction is always a new entry;
- `vouchers_voucher` pages keep 30% free (fillfactor 70), so the balance update of every
  charged voucher stays in place (a HOT update, no index churn);
- the ledger's identity sequence steps by 5,000, so `ledger_charge_many` reserves a
  batch's ids with one `nextval` under the vouchers' locks; ids stay unique and
  increasing (a voucher's entries in id order are its history), not dense.

`replaces` lets a database migrated with the old files carry on.
"""

from decimal import Decimal
from django.conf import settings
from django.db import migrations, models
import django.db.models.deletion
import django.db.models.functions.datetime
import vouchers.models.applications

LEDGER_APPEND_ONLY = """
CREATE TRIGGER vouchers_ledgerentry_append_only
    BEFORE UPDATE OR DELETE ON vouchers_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION suanli_refuse_change();
"""

SQL_STEPS = [
    migrations.RunSQL(
        LEDGER_APPEND_ONLY,
        reverse_sql="DROP TRIGGER IF EXISTS vouchers_ledgerentry_append_only ON vouchers_ledgerentry",
    ),
    migrations.RunSQL(
        "ALTER TABLE vouchers_voucher SET (fillfactor = 70)",
        "ALTER TABLE vouchers_voucher RESET (fillfactor)",
    ),
    migrations.RunSQL(
        "ALTER TABLE vouchers_ledgerentry ALTER COLUMN id SET INCREMENT BY 5000",
        "ALTER TABLE vouchers_ledgerentry ALTER COLUMN id SET INCREMENT BY 1",
    ),
]


class Migration(migrations.Migration):

    initial = True

    replaces = [
        ('vouchers', '0001_initial'),
        ('vouchers', '0002_ledger_append_only'),
        ('vouchers', '0003_applications_reviews'),
        ('vouchers', '0004_eligibility_choices'),
        ('vouchers', '0005_ledger_hot_path_lean'),
        ('vouchers', '0006_ledger_lean_ids_by_block'),
        ('vouchers', '0007_copy_defaults'),
        ('vouchers', '0008_reminder_sent'),
        ('vouchers', '0009_program_reviews_blind'),
        ('vouchers', '0010_application_tie_break'),
    ]

    dependencies = [
        ('portal', '0001_squashed_0004_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Company',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('legal_name', models.CharField(max_length=200, verbose_name='legal name')),
                ('credit_code', models.CharField(max_length=18, unique=True, verbose_name='unified social credit code')),
                ('registered_address', models.CharField(blank=True, max_length=300, verbose_name='registered address')),
                ('founded_on', models.DateField(blank=True, null=True, verbose_name='founding date')),
                ('headcount', models.PositiveIntegerField(blank=True, null=True, verbose_name='headcount')),
                ('revenue_last_year', models.DecimalField(blank=True, decimal_places=2, max_digits=14, null=True, verbose_name='revenue last year')),
                ('created_at', models.DateTimeField(auto_now_add=True, verbose_name='created at')),
                ('registered_city', models.ForeignKey(blank=True, help_text='Leave empty when registered in a city not on this portal.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='registered_companies', to='portal.city', verbose_name='registered in')),
            ],
            options={
                'verbose_name': 'company',
                'verbose_name_plural': 'companies',
                'ordering': ['legal_name'],
            },
        ),
        migrations.CreateModel(
            name='Application',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('state', models.CharField(choices=[('draft', 'Draft'), ('submitted', 'Submitted'), ('screening', 'Screening'), ('in_review', 'In review'), ('tie_break', 'Tie-break'), ('info_requested', 'Information requested'), ('recommended', 'Recommended'), ('not_recommended', 'Not recommended'), ('in_notice', 'In public notice'), ('approved', 'Approved'), ('rejected', 'Rejected'), ('withdrawn', 'Withdrawn')], default='draft', max_length=20, verbose_name='state')),
                ('resume_state', models.CharField(blank=True, max_length=20)),
                ('title', models.CharField(blank=True, max_length=200, verbose_name='project title')),
                ('summary', models.TextField(blank=True, verbose_name='summary')),
                ('model_plans', models.TextField(blank=True, verbose_name='model plans')),
                ('requested_amount', models.DecimalField(blank=True, decimal_places=2, max_digits=14, null=True, verbose_name='requested amount')),
                ('declares_no_related_party', models.BooleanField(default=False, verbose_name='the compute provider is not a related party')),
                ('declares_no_other_subsidy', models.BooleanField(default=False, verbose_name='no other subsidy for the same contract')),
                ('declares_true_information', models.BooleanField(default=False, verbose_name='the information is true')),
                ('eligibility', models.CharField(blank=True, choices=[('pass', 'Pass'), ('fail', 'Fail'), ('needs_review', 'Needs review')], max_length=12, verbose_name='eligibility')),
                ('awarded_amount', models.DecimalField(blank=True, decimal_places=2, max_digits=14, null=True, verbose_name='awarded amount')),
                ('decision_reason', models.TextField(blank=True, verbose_name='reason for the decision')),
                ('notice_ends_at', models.DateTimeField(blank=True, null=True, verbose_name='public notice ends')),
                ('submitted_at', models.DateTimeField(blank=True, null=True, verbose_name='submitted at')),
                ('decided_at', models.DateTimeField(blank=True, null=True, verbose_name='decided at')),
                ('created_at', models.DateTimeField(auto_now_add=True, verbose_name='created at')),
                ('updated_at', models.DateTimeField(auto_now=True, verbose_name='updated at')),
                ('city', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='applications', to='portal.city')),
                ('created_by', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('company', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='applications', to='vouchers.company')),
            ],
            options={
                'verbose_name': 'application',
                'verbose_name_plural': 'applications',
                'ordering': ['-submitted_at', '-id'],
            },
        ),
        migrations.CreateModel(
            name='CompanyInvitation',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('email', models.EmailField(max_length=254, verbose_name='email address')),
                ('token', models.CharField(max_length=64, unique=True)),
                ('created_at', models.DateTimeField(auto_now_add=True, verbose_name='created at')),
                ('accepted_at', models.DateTimeField(blank=True, null=True, verbose_name='accepted at')),
                ('company', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='invitations', to='vouchers.company')),
                ('invited_by', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'invitation',
                'verbose_name_plural': 'invitations',
            },
        ),
        migrations.CreateModel(
            name='CompanyMember',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('is_owner', models.BooleanField(default=False, verbose_name='owner')),
                ('created_at', models.DateTimeField(auto_now_add=True, verbose_name='created at')),
                ('company', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, to='vouchers.company')),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'company member',
                'verbose_name_plural': 'company members',
            },
        ),
        migrations.AddField(
            model_name='company',
            name='members',
            field=models.ManyToManyField(related_name='companies', through='vouchers.CompanyMember', to=settings.AUTH_USER_MODEL),
        ),
        migrations.CreateModel(
            name='ComputePlanRow',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('accelerator', models.CharField(max_length=64, verbose_name='accelerator model')),
                ('domestic', models.BooleanField(default=False, verbose_name='domestic chip')),
                ('hours', models.DecimalField(decimal_places=1, max_digits=12, verbose_name='accelerator-hours')),
                ('preferred_data_center', models.CharField(blank=True, max_length=120, verbose_name='preferred data center')),
                ('application', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='compute_plan', to='vouchers.application')),
            ],
            options={
                'verbose_name': 'compute plan row',
                'verbose_name_plural': 'compute plan rows',
                'ordering': ['id'],
            },
        ),
        migrations.CreateModel(
            name='Document',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('doc_type', models.CharField(max_length=60, verbose_name='document type')),
                ('file', models.FileField(upload_to=vouchers.models.applications._document_path)),
                ('original_name', models.CharField(max_length=200, verbose_name='file name')),
                ('content_type', models.CharField(max_length=40)),
                ('size', models.PositiveIntegerField(verbose_name='size')),
                ('uploaded_at', models.DateTimeField(auto_now_add=True, verbose_name='uploaded at')),
                ('application', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='documents', to='vouchers.application')),
                ('uploaded_by', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'document',
                'verbose_name_plural': 'documents',
                'ordering': ['doc_type', 'id'],
            },
        ),
        migrations.CreateModel(
            name='EligibilityOutcome',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('rule', models.CharField(max_length=60, verbose_name='rule')),
                ('outcome', models.CharField(choices=[('pass', 'Pass'), ('fail', 'Fail'), ('needs_review', 'Needs review')], max_length=12, verbose_name='outcome')),
                ('message_zh', models.CharField(max_length=300)),
                ('message_en', models.CharField(max_length=300)),
                ('application', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='eligibility_outcomes', to='vouchers.application')),
            ],
            options={
                'ordering': ['id'],
            },
        ),
        migrations.CreateModel(
            name='InfoRequest',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('question', models.TextField(verbose_name='question')),
                ('asked_at', models.DateTimeField(auto_now_add=True)),
                ('answer', models.TextField(blank=True, verbose_name='answer')),
                ('answered_at', models.DateTimeField(blank=True, null=True)),
                ('application', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='info_requests', to='vouchers.application')),
                ('asked_by', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['asked_at'],
            },
        ),
        migrations.CreateModel(
            name='Objection',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('text', models.TextField(verbose_name='objection')),
                ('raised_at', models.DateTimeField(auto_now_add=True)),
                ('resolution', models.TextField(blank=True, verbose_name='resolution')),
                ('resolved_at', models.DateTimeField(blank=True, null=True)),
                ('application', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='objections', to='vouchers.application')),
                ('raised_by', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('resolved_by', models.ForeignKey(null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['raised_at'],
            },
        ),
        migrations.CreateModel(
            name='Program',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('slug', models.SlugField(max_length=60, verbose_name='slug')),
                ('name_zh', models.CharField(max_length=200, verbose_name='name (Chinese)')),
                ('name_en', models.CharField(max_length=200, verbose_name='name (English)')),
                ('description_zh', models.TextField(blank=True, verbose_name='description (Chinese)')),
                ('description_en', models.TextField(blank=True, verbose_name='description (English)')),
                ('status', models.CharField(choices=[('draft', 'Draft'), ('open', 'Open'), ('closed', 'Closed'), ('archived', 'Archived')], default='draft', max_length=10, verbose_name='status')),
                ('opens_at', models.DateTimeField(blank=True, null=True, verbose_name='opens at')),
                ('closes_at', models.DateTimeField(blank=True, null=True, verbose_name='closes at')),
                ('budget', models.DecimalField(decimal_places=2, max_digits=14, verbose_name='budget')),
                ('allocated', models.DecimalField(decimal_places=2, default=Decimal('0.00'), max_digits=14, verbose_name='allocated')),
                ('award_min', models.DecimalField(decimal_places=2, max_digits=14, verbose_name='minimum award')),
                ('award_max', models.DecimalField(decimal_places=2, max_digits=14, verbose_name='maximum award')),
                ('rate_domestic', models.DecimalField(decimal_places=2, max_digits=3, verbose_name='rate for domestic chips')),
                ('rate_other', models.DecimalField(decimal_places=2, max_digits=3, verbose_name='rate for other chips')),
                ('company_yearly_cap', models.DecimalField(blank=True, decimal_places=2, max_digits=14, null=True, verbose_name='yearly cap per company')),
                ('validity_months', models.PositiveSmallIntegerField(default=12, verbose_name='voucher validity (months)')),
                ('grace_days', models.PositiveSmallIntegerField(default=30, verbose_name='grace days for late usage')),
                ('reviews_required', models.PositiveSmallIntegerField(default=0, verbose_name='reviews required')),
                ('reviews_blind', models.BooleanField(default=False, help_text='Reviewers never see the other reviews, even after submitting their own. Program managers, approvers and auditors always see them.', verbose_name='keep reviews blind to reviewers')),
                ('rubric', models.JSONField(blank=True, default=list, verbose_name='scoring rubric')),
                ('notice_days', models.PositiveSmallIntegerField(default=0, verbose_name='public-notice days')),
                ('required_documents', models.JSONField(blank=True, default=list, verbose_name='required document types')),
                ('eligibility_rules', models.JSONField(blank=True, default=list, verbose_name='eligibility rules')),
                ('hard_fail_rejects', models.BooleanField(default=False, verbose_name='a failed eligibility rule rejects at once')),
                ('created_at', models.DateTimeField(auto_now_add=True, verbose_name='created at')),
                ('updated_at', models.DateTimeField(auto_now=True, verbose_name='updated at')),
                ('city', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='programs', to='portal.city')),
            ],
            options={
                'verbose_name': 'program',
                'verbose_name_plural': 'programs',
                'ordering': ['city', '-opens_at', 'slug'],
            },
        ),
        migrations.AddField(
            model_name='application',
            name='program',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='applications', to='vouchers.program'),
        ),
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
        migrations.CreateModel(
            name='Review',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('assigned_at', models.DateTimeField(auto_now_add=True, verbose_name='assigned at')),
                ('conflict', models.BooleanField(null=True, verbose_name='conflict of interest')),
                ('conflict_note', models.CharField(blank=True, max_length=300, verbose_name='conflict note')),
                ('scores', models.JSONField(blank=True, default=dict, verbose_name='scores')),
                ('total', models.DecimalField(decimal_places=2, max_digits=6, null=True, verbose_name='total score')),
                ('comment', models.TextField(blank=True, verbose_name='comment')),
                ('recommend', models.BooleanField(null=True, verbose_name='recommends')),
                ('submitted_at', models.DateTimeField(blank=True, null=True, verbose_name='submitted at')),
                ('application', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='reviews', to='vouchers.application')),
                ('assigned_by', models.ForeignKey(null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('reviewer', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='reviews', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'review',
                'verbose_name_plural': 'reviews',
            },
        ),
        migrations.CreateModel(
            name='StateChange',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('from_state', models.CharField(max_length=20)),
                ('to_state', models.CharField(max_length=20)),
                ('actor_label', models.CharField(max_length=200)),
                ('note', models.TextField(blank=True)),
                ('at', models.DateTimeField(auto_now_add=True)),
                ('application', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='timeline', to='vouchers.application')),
            ],
            options={
                'ordering': ['at', 'id'],
            },
        ),
        migrations.CreateModel(
            name='Voucher',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('code', models.CharField(max_length=24, unique=True, verbose_name='code')),
                ('face_value', models.DecimalField(decimal_places=2, max_digits=14, verbose_name='face value')),
                ('balance', models.DecimalField(decimal_places=2, max_digits=14, verbose_name='balance')),
                ('status', models.CharField(choices=[('active', 'Active'), ('suspended', 'Suspended'), ('expired', 'Expired'), ('exhausted', 'Exhausted'), ('revoked', 'Revoked')], default='active', max_length=10, verbose_name='status')),
                ('valid_from', models.DateField(verbose_name='valid from')),
                ('valid_until', models.DateField(verbose_name='valid until')),
                ('status_reason', models.CharField(blank=True, max_length=300, verbose_name='reason')),
                ('issued_at', models.DateTimeField(auto_now_add=True, verbose_name='issued at')),
                ('updated_at', models.DateTimeField(auto_now=True, verbose_name='updated at')),
                ('application', models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='voucher', to='vouchers.application', verbose_name='application')),
                ('city', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='vouchers', to='portal.city')),
                ('company', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='vouchers', to='vouchers.company')),
                ('program', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='vouchers', to='vouchers.program')),
            ],
            options={
                'verbose_name': 'voucher',
                'verbose_name_plural': 'vouchers',
                'ordering': ['-issued_at'],
            },
        ),
        migrations.CreateModel(
            name='LedgerEntry',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('issue', 'Issue'), ('charge', 'Charge'), ('reversal', 'Reversal'), ('expire', 'Expiry'), ('revoke', 'Revocation'), ('adjust', 'Adjustment')], max_length=10, verbose_name='kind')),
                ('amount', models.DecimalField(decimal_places=2, max_digits=14, verbose_name='amount')),
                ('balance_after', models.DecimalField(decimal_places=2, max_digits=14, verbose_name='balance after')),
                ('actor_label', models.CharField(max_length=200, verbose_name='actor')),
                ('usage_record_id', models.BigIntegerField(blank=True, null=True, verbose_name='usage record')),
                ('memo', models.CharField(blank=True, max_length=300, verbose_name='memo')),
                ('created_at', models.DateTimeField(auto_now_add=True, db_default=django.db.models.functions.datetime.Now(), verbose_name='time')),
                ('actor', models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='actor')),
                ('voucher', models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='entries', to='vouchers.voucher')),
            ],
            options={
                'verbose_name': 'ledger entry',
                'verbose_name_plural': 'ledger entries',
                'ordering': ['voucher', 'id'],
            },
        ),
        migrations.AddConstraint(
            model_name='companymember',
            constraint=models.UniqueConstraint(fields=('company', 'user'), name='company_member_once'),
        ),
        migrations.AddConstraint(
            model_name='program',
            constraint=models.UniqueConstraint(fields=('city', 'slug'), name='program_slug_per_city'),
        ),
        migrations.AddConstraint(
            model_name='program',
            constraint=models.CheckConstraint(condition=models.Q(('award_min__gte', 0), ('award_min__lte', models.F('award_max')), ('award_max__lte', models.F('budget'))), name='program_award_bounds'),
        ),
        migrations.AddConstraint(
            model_name='program',
            constraint=models.CheckConstraint(condition=models.Q(('rate_domestic__gte', 0), ('rate_domestic__lte', 1), ('rate_other__gte', 0), ('rate_other__lte', 1)), name='program_rates_0_1'),
        ),
        migrations.AddConstraint(
            model_name='program',
            constraint=models.CheckConstraint(condition=models.Q(('allocated__gte', 0), ('allocated__lte', models.F('budget'))), name='program_allocated_within_budget'),
        ),
        migrations.AddIndex(
            model_name='application',
            index=models.Index(fields=['city', 'state'], name='application_city_state'),
        ),
        migrations.AddIndex(
            model_name='application',
            index=models.Index(fields=['program', 'state'], name='application_program_state'),
        ),
        migrations.AddConstraint(
            model_name='review',
            constraint=models.UniqueConstraint(fields=('application', 'reviewer'), name='review_once'),
        ),
        migrations.AddIndex(
            model_name='voucher',
            index=models.Index(fields=['city', 'status'], name='voucher_city_status'),
        ),
        migrations.AddConstraint(
            model_name='voucher',
            constraint=models.CheckConstraint(condition=models.Q(('balance__gte', 0), ('balance__lte', models.F('face_value'))), name='voucher_balance_within_face_value'),
        ),
        migrations.AddConstraint(
            model_name='voucher',
            constraint=models.CheckConstraint(condition=models.Q(('valid_from__lte', models.F('valid_until'))), name='voucher_validity_in_order'),
        ),
        migrations.AddIndex(
            model_name='ledgerentry',
            index=models.Index(fields=['voucher', 'id'], name='ledger_voucher_id'),
        ),
        migrations.AddConstraint(
            model_name='ledgerentry',
            constraint=models.CheckConstraint(condition=models.Q(('balance_after__gte', 0)), name='ledger_balance_ge_0'),
        ),
        *SQL_STEPS,
    ]
