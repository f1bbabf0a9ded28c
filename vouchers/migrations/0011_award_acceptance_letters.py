"""Awards awaiting acceptance (the program's reservation, the application's award
fields and states) and decision letters; PostgreSQL refuses to change or delete an
issued letter (the function comes from portal's initial migration)."""

from decimal import Decimal

import django.db.models.deletion
import django.db.models.expressions
from django.db import migrations, models

LETTER_IMMUTABLE = """
CREATE TRIGGER vouchers_decisionletter_immutable
    BEFORE UPDATE OR DELETE ON vouchers_decisionletter
    FOR EACH ROW EXECUTE FUNCTION suanli_refuse_change();
"""
LETTER_MUTABLE = (
    "DROP TRIGGER IF EXISTS vouchers_decisionletter_immutable ON vouchers_decisionletter;"
)


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0005_audit_key_id"),
        ("vouchers", "0001_squashed_0010_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="DecisionLetter",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("approval", "Approval letter"),
                            ("rejection", "Rejection letter"),
                            ("not_recommended", "Not-recommended letter"),
                        ],
                        max_length=20,
                        verbose_name="kind",
                    ),
                ),
                (
                    "number",
                    models.CharField(max_length=24, unique=True, verbose_name="document number"),
                ),
                ("year", models.PositiveSmallIntegerField()),
                ("sequence", models.PositiveIntegerField()),
                ("language", models.CharField(max_length=10, verbose_name="language")),
                ("title", models.CharField(max_length=300, verbose_name="title")),
                ("body", models.TextField(verbose_name="body")),
                ("pdf", models.BinaryField()),
                ("sha256", models.CharField(max_length=64)),
                ("issued_at", models.DateTimeField(auto_now_add=True, verbose_name="issued at")),
            ],
            options={
                "verbose_name": "decision letter",
                "verbose_name_plural": "decision letters",
                "ordering": ["issued_at", "id"],
            },
        ),
        migrations.CreateModel(
            name="LetterNumber",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("year", models.PositiveSmallIntegerField()),
                ("last", models.PositiveIntegerField(default=0)),
            ],
        ),
        migrations.CreateModel(
            name="LetterTemplate",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("approval", "Approval letter"),
                            ("rejection", "Rejection letter"),
                            ("not_recommended", "Not-recommended letter"),
                        ],
                        max_length=20,
                        verbose_name="kind",
                    ),
                ),
                ("title_zh", models.CharField(max_length=200, verbose_name="title (Chinese)")),
                ("body_zh", models.TextField(verbose_name="body (Chinese)")),
                ("title_en", models.CharField(max_length=200, verbose_name="title (English)")),
                ("body_en", models.TextField(verbose_name="body (English)")),
                ("updated_at", models.DateTimeField(auto_now=True, verbose_name="updated at")),
            ],
            options={
                "verbose_name": "letter template",
                "verbose_name_plural": "letter templates",
            },
        ),
        migrations.AddField(
            model_name="application",
            name="award_answered_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="award answered at"),
        ),
        migrations.AddField(
            model_name="application",
            name="award_expires_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="accept by"),
        ),
        migrations.AddField(
            model_name="application",
            name="award_reason",
            field=models.TextField(blank=True, verbose_name="reason for the award"),
        ),
        migrations.AddField(
            model_name="program",
            name="acceptance_days",
            field=models.PositiveSmallIntegerField(
                default=0,
                help_text=(
                    "The company accepts or declines the award within this many days before "
                    "the voucher is issued; 0 issues the voucher at approval."
                ),
                verbose_name="days to accept an award",
            ),
        ),
        migrations.AddField(
            model_name="program",
            name="reserved",
            field=models.DecimalField(
                decimal_places=2,
                default=Decimal("0.00"),
                max_digits=14,
                verbose_name="reserved for awards awaiting acceptance",
            ),
        ),
        migrations.AlterField(
            model_name="application",
            name="state",
            field=models.CharField(
                choices=[
                    ("draft", "Draft"),
                    ("submitted", "Submitted"),
                    ("screening", "Screening"),
                    ("in_review", "In review"),
                    ("tie_break", "Tie-break"),
                    ("info_requested", "Information requested"),
                    ("recommended", "Recommended"),
                    ("not_recommended", "Not recommended"),
                    ("in_notice", "In public notice"),
                    ("awarded", "Awarded, awaiting acceptance"),
                    ("approved", "Approved"),
                    ("rejected", "Rejected"),
                    ("withdrawn", "Withdrawn"),
                    ("declined", "Award declined"),
                    ("lapsed", "Award lapsed"),
                ],
                default="draft",
                max_length=20,
                verbose_name="state",
            ),
        ),
        migrations.AddConstraint(
            model_name="program",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("reserved__gte", 0),
                    (
                        "reserved__lte",
                        django.db.models.expressions.CombinedExpression(
                            models.F("budget"), "-", models.F("allocated")
                        ),
                    ),
                ),
                name="program_reserved_within_budget",
            ),
        ),
        migrations.AddField(
            model_name="decisionletter",
            name="application",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="letters",
                to="vouchers.application",
            ),
        ),
        migrations.AddField(
            model_name="decisionletter",
            name="city",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="+", to="portal.city"
            ),
        ),
        migrations.AddField(
            model_name="letternumber",
            name="city",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="+", to="portal.city"
            ),
        ),
        migrations.AddField(
            model_name="lettertemplate",
            name="program",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="letter_templates",
                to="vouchers.program",
            ),
        ),
        migrations.AddConstraint(
            model_name="decisionletter",
            constraint=models.UniqueConstraint(
                fields=("city", "year", "sequence"), name="letter_sequence_per_city_year"
            ),
        ),
        migrations.AddConstraint(
            model_name="letternumber",
            constraint=models.UniqueConstraint(
                fields=("city", "year"), name="letter_number_per_city_year"
            ),
        ),
        migrations.AddConstraint(
            model_name="lettertemplate",
            constraint=models.UniqueConstraint(
                fields=("program", "kind"), name="letter_template_once"
            ),
        ),
        migrations.RunSQL(LETTER_IMMUTABLE, reverse_sql=LETTER_MUTABLE),
    ]
