"""The id of the key an audit event's HMAC is under (portal.audit); the events written
before are left as they are (empty: plain SHA-256), so their hashes still verify."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("portal", "0001_squashed_0004_initial")]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="key_id",
            field=models.CharField(blank=True, default="", max_length=16),
        ),
    ]
