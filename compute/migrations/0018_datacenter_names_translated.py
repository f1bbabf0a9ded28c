"""A data center's operator and cluster get a name in each language (issue #14 item 2).

The one `operator` field held the Chinese name and `cluster` the English one (as the demo
and the admin wrote them), so they become `operator_zh` and `cluster_en`; the new other
half starts as a copy, a name in the wrong language being better than none until someone
writes it (the demo seed fills both).
"""

from django.db import migrations, models
from django.db.models import F


def copy_across(apps, schema_editor):
    DataCenter = apps.get_model("compute", "DataCenter")
    DataCenter.objects.update(operator_en=F("operator_zh"), cluster_zh=F("cluster_en"))


class Migration(migrations.Migration):
    dependencies = [
        ("compute", "0017_webhooks"),
    ]

    operations = [
        migrations.RenameField("datacenter", "operator", "operator_zh"),
        migrations.AlterField(
            model_name="datacenter",
            name="operator_zh",
            field=models.CharField(max_length=120, verbose_name="operator (Chinese)"),
        ),
        migrations.RenameField("datacenter", "cluster", "cluster_en"),
        migrations.AlterField(
            model_name="datacenter",
            name="cluster_en",
            field=models.CharField(
                help_text="e.g. Gui'an, Zhongwei", max_length=80, verbose_name="cluster (English)"
            ),
        ),
        migrations.AddField(
            model_name="datacenter",
            name="operator_en",
            field=models.CharField(default="", max_length=120, verbose_name="operator (English)"),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="datacenter",
            name="cluster_zh",
            field=models.CharField(default="", max_length=80, verbose_name="cluster (Chinese)"),
            preserve_default=False,
        ),
        migrations.RunPython(copy_across, migrations.RunPython.noop),
    ]
