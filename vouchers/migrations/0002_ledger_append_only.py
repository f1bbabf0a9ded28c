"""PostgreSQL itself refuses to change or delete ledger entries (the function comes from
portal's audit migration): a correction is always a new entry."""

from django.db import migrations

TRIGGER = """
CREATE TRIGGER vouchers_ledgerentry_append_only
    BEFORE UPDATE OR DELETE ON vouchers_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION suanli_refuse_change();
"""

REVERSE = "DROP TRIGGER IF EXISTS vouchers_ledgerentry_append_only ON vouchers_ledgerentry;"


class Migration(migrations.Migration):
    dependencies = [("vouchers", "0001_initial"), ("portal", "0002_audit_append_only")]

    operations = [migrations.RunSQL(TRIGGER, reverse_sql=REVERSE)]
