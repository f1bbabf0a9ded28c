"""A batch's results as JSON text (see UsageBatch.results_json), uncompressed."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("compute", "0007_usage_hot_path_lean")]

    operations = [
        migrations.AddField(
            model_name="usagebatch",
            name="results_json",
            field=models.TextField(default="[]"),
        ),
        migrations.RunSQL(
            "UPDATE compute_usagebatch SET results_json = results::text",
            "UPDATE compute_usagebatch SET results = results_json::jsonb",
        ),
        migrations.RemoveField(model_name="usagebatch", name="results"),
        migrations.RunSQL(
            "ALTER TABLE compute_usagebatch ALTER COLUMN results_json SET STORAGE EXTERNAL",
            "ALTER TABLE compute_usagebatch ALTER COLUMN results_json SET STORAGE EXTENDED",
        ),
    ]
