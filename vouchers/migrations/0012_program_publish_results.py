"""Programs say whether their results (awarded companies, amounts, decision dates) are
public (issue #12 item 9); existing programs publish them, as new ones do by default."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("vouchers", "0011_award_acceptance_letters"),
    ]

    operations = [
        migrations.AddField(
            model_name="program",
            name="publish_results",
            field=models.BooleanField(
                default=True,
                help_text=(
                    "Show the awarded companies, amounts and decision dates on a public "
                    "page once each award's public notice has ended. Never documents, "
                    "scores or personal data."
                ),
                verbose_name="publish the results",
            ),
        ),
    ]
