"""PostgreSQL itself refuses to change or delete audit events.

`suanli_refuse_change()` is shared: the voucher ledger uses it for its entries too.
TRUNCATE is deliberately not blocked: it needs the table owner's rights (production runs
the portal as a role that lacks them) and the test runner's flush between tests uses it.
"""

from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION suanli_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""

TRIGGERS = """
CREATE TRIGGER portal_auditevent_append_only
    BEFORE UPDATE OR DELETE ON portal_auditevent
    FOR EACH ROW EXECUTE FUNCTION suanli_refuse_change();
"""

REVERSE = """
DROP TRIGGER IF EXISTS portal_auditevent_append_only ON portal_auditevent;
"""


class Migration(migrations.Migration):
    dependencies = [("portal", "0001_initial")]

    operations = [
        migrations.RunSQL(FUNCTION, reverse_sql=migrations.RunSQL.noop),
        migrations.RunSQL(TRIGGERS, reverse_sql=REVERSE),
    ]
