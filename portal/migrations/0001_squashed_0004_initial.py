"""The portal's schema as of portal 0001–0004, squashed while nothing was released.

Besides what the models say, one explicit step (below, after the models):
- `suanli_refuse_change()` and the trigger that makes `portal_auditevent` append-only:
  PostgreSQL itself refuses UPDATE and DELETE of audit events. The voucher ledger uses
  the same function. TRUNCATE is not blocked by a trigger: it needs the table owner's
  rights, which the application's role should not have (SECURITY.md).

`replaces` lets a database migrated with the old files carry on; it can go once every
database in use has recorded this migration.
"""

from django.conf import settings
from django.db import migrations, models
import django.db.models.deletion
import django.utils.timezone
import portal.models

FUNCTION = """
CREATE OR REPLACE FUNCTION suanli_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""

AUDIT_APPEND_ONLY = """
CREATE TRIGGER portal_auditevent_append_only
    BEFORE UPDATE OR DELETE ON portal_auditevent
    FOR EACH ROW EXECUTE FUNCTION suanli_refuse_change();
"""

SQL_STEPS = [
    migrations.RunSQL(FUNCTION, reverse_sql="DROP FUNCTION IF EXISTS suanli_refuse_change()"),
    migrations.RunSQL(
        AUDIT_APPEND_ONLY,
        reverse_sql="DROP TRIGGER IF EXISTS portal_auditevent_append_only ON portal_auditevent",
    ),
]


class Migration(migrations.Migration):

    initial = True

    replaces = [
        ('portal', '0001_initial'),
        ('portal', '0002_audit_append_only'),
        ('portal', '0003_sign_ins'),
        ('portal', '0004_staff_invitation'),
    ]

    dependencies = [
        ('auth', '0012_alter_user_first_name_max_length'),
    ]

    operations = [
        migrations.CreateModel(
            name='User',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('password', models.CharField(max_length=128, verbose_name='password')),
                ('last_login', models.DateTimeField(blank=True, null=True, verbose_name='last login')),
                ('is_superuser', models.BooleanField(default=False, help_text='Designates that this user has all permissions without explicitly assigning them.', verbose_name='superuser status')),
                ('email', models.EmailField(max_length=254, unique=True, verbose_name='email address')),
                ('display_name', models.CharField(blank=True, max_length=120, verbose_name='display name')),
                ('preferred_language', models.CharField(choices=[('zh-hans', 'Simplified Chinese'), ('en', 'English')], default='zh-hans', max_length=10, verbose_name='preferred language')),
                ('is_staff', models.BooleanField(default=False, help_text='May sign in to the platform admin site.', verbose_name='platform staff')),
                ('is_active', models.BooleanField(default=True, verbose_name='active')),
                ('date_joined', models.DateTimeField(default=django.utils.timezone.now, verbose_name='date joined')),
                ('groups', models.ManyToManyField(blank=True, help_text='The groups this user belongs to. A user will get all permissions granted to each of their groups.', related_name='user_set', related_query_name='user', to='auth.group', verbose_name='groups')),
                ('user_permissions', models.ManyToManyField(blank=True, help_text='Specific permissions for this user.', related_name='user_set', related_query_name='user', to='auth.permission', verbose_name='user permissions')),
            ],
            options={
                'verbose_name': 'user',
                'verbose_name_plural': 'users',
            },
            managers=[
                ('objects', portal.models.UserManager()),
            ],
        ),
        migrations.CreateModel(
            name='City',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('slug', models.SlugField(max_length=40, unique=True, validators=[portal.models.validate_city_slug], verbose_name='slug')),
                ('name_zh', models.CharField(max_length=80, verbose_name='name (Chinese)')),
                ('name_en', models.CharField(max_length=80, verbose_name='name (English)')),
                ('code', models.CharField(help_text="Two or three capital letters that start this city's voucher codes, e.g. SH.", max_length=3, unique=True, verbose_name='voucher prefix')),
                ('timezone', models.CharField(default='Asia/Shanghai', max_length=64, verbose_name='time zone')),
                ('is_active', models.BooleanField(default=True, verbose_name='active')),
                ('created_at', models.DateTimeField(auto_now_add=True, verbose_name='created at')),
            ],
            options={
                'verbose_name': 'city',
                'verbose_name_plural': 'cities',
                'ordering': ['slug'],
                'constraints': [models.CheckConstraint(condition=models.Q(('code__regex', '^[A-Z]{2,3}$')), name='city_code_capitals')],
            },
        ),
        migrations.CreateModel(
            name='AuditEvent',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('seq', models.PositiveBigIntegerField(verbose_name='sequence')),
                ('actor_label', models.CharField(blank=True, help_text="Who acted, as text: a user's email, a data center, or 'system'.", max_length=200, verbose_name='actor')),
                ('action', models.CharField(max_length=80, verbose_name='action')),
                ('target_type', models.CharField(blank=True, max_length=80, verbose_name='target type')),
                ('target_id', models.CharField(blank=True, max_length=80, verbose_name='target id')),
                ('data', models.JSONField(blank=True, default=dict, verbose_name='data')),
                ('ip', models.GenericIPAddressField(blank=True, null=True, verbose_name='IP address')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='time')),
                ('prev_hash', models.CharField(max_length=64)),
                ('hash', models.CharField(max_length=64, unique=True)),
                ('actor', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='audit_events', to=settings.AUTH_USER_MODEL)),
                ('city', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='audit_events', to='portal.city')),
            ],
            options={
                'verbose_name': 'audit event',
                'verbose_name_plural': 'audit events',
                'ordering': ['city_id', 'seq'],
                'indexes': [models.Index(fields=['city', '-created_at'], name='portal_audi_city_id_36385d_idx'), models.Index(fields=['target_type', 'target_id'], name='portal_audi_target__6e2e29_idx')],
                'constraints': [models.UniqueConstraint(fields=('city', 'seq'), name='audit_city_seq_unique'), models.UniqueConstraint(condition=models.Q(('city__isnull', True)), fields=('seq',), name='audit_platform_seq_unique')],
            },
        ),
        migrations.CreateModel(
            name='CityMembership',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('role', models.CharField(choices=[('reviewer', 'Reviewer'), ('approver', 'Approver'), ('program_manager', 'Program manager'), ('auditor', 'Auditor')], max_length=20, verbose_name='role')),
                ('created_at', models.DateTimeField(auto_now_add=True, verbose_name='created at')),
                ('city', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='memberships', to='portal.city')),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='memberships', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'city membership',
                'verbose_name_plural': 'city memberships',
                'indexes': [models.Index(fields=['city', 'role'], name='portal_city_city_id_904c86_idx')],
                'constraints': [models.UniqueConstraint(fields=('user', 'city', 'role'), name='membership_unique_role')],
            },
        ),
        migrations.CreateModel(
            name='SignIn',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('session_key', models.CharField(blank=True, max_length=40)),
                ('ip', models.GenericIPAddressField(blank=True, null=True, verbose_name='IP address')),
                ('user_agent', models.CharField(blank=True, max_length=300, verbose_name='browser')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='signed in at')),
                ('ended_at', models.DateTimeField(blank=True, null=True, verbose_name='ended at')),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='sign_ins', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'sign-in',
                'verbose_name_plural': 'sign-ins',
                'indexes': [models.Index(fields=['user', '-created_at'], name='signin_user_created')],
            },
        ),
        migrations.CreateModel(
            name='StaffInvitation',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('email', models.EmailField(max_length=254, verbose_name='email address')),
                ('role', models.CharField(choices=[('reviewer', 'Reviewer'), ('approver', 'Approver'), ('program_manager', 'Program manager'), ('auditor', 'Auditor')], max_length=20, verbose_name='role')),
                ('token', models.CharField(max_length=64, unique=True)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='invited at')),
                ('accepted_at', models.DateTimeField(blank=True, null=True, verbose_name='accepted at')),
                ('city', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='staff_invitations', to='portal.city')),
                ('invited_by', models.ForeignKey(null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'staff invitation',
                'verbose_name_plural': 'staff invitations',
                'indexes': [models.Index(fields=['city', 'email'], name='staffinvite_city_email')],
            },
        ),
        *SQL_STEPS,
    ]
