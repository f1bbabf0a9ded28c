"""Indexes for the queue, the work lists (only the applications in process; the answered
information requests), the vouchers list and the public results, and
the per-program counts of applications by state (`ProgramStateCount`), kept by a
statement-level trigger on the applications (issue #12, speed): each INSERT, UPDATE,
DELETE or COPY adds its changes, in its own transaction, from its transition tables.

The program's row (state "") is upserted first, programs in ascending id, and only then
the state rows: every transaction that changes a program's applications holds that row
before any of its state rows, so two transactions cannot take state rows in opposite
orders and deadlock on them."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# One SELECT per kind of statement gives (program, state, net count, rows changed);
# an UPDATE counts only the rows whose program, state, submission or decision changed.
_DELTAS = {
    "INSERT": "SELECT program_id, state::text, count(*), count(*) FROM new_rows GROUP BY 1, 2",
    "DELETE": "SELECT program_id, state::text, -count(*), count(*) FROM old_rows GROUP BY 1, 2",
    "UPDATE": """
        SELECT program_id, state, sum(sign)::bigint, count(*) FROM (
            SELECT program_id, state::text, 1 AS sign FROM (
                SELECT id, program_id, state, submitted_at, decided_at FROM new_rows
                EXCEPT ALL
                SELECT id, program_id, state, submitted_at, decided_at FROM old_rows) a
            UNION ALL
            SELECT program_id, state::text, -1 FROM (
                SELECT id, program_id, state, submitted_at, decided_at FROM old_rows
                EXCEPT ALL
                SELECT id, program_id, state, submitted_at, decided_at FROM new_rows) b
        ) c GROUP BY 1, 2""",
}

_BRANCH = """IF TG_OP = '@OP@' THEN
        SELECT array_agg(d.p), array_agg(d.s), array_agg(d.n), array_agg(d.c)
          INTO programs, states, counts, changed
          FROM (@DELTAS@) AS d(p, s, n, c);"""
_BRANCHES = "\n    ELS".join(
    _BRANCH.replace("@OP@", op).replace("@DELTAS@", sql) for op, sql in _DELTAS.items()
)

TALLY = """
CREATE FUNCTION vouchers_application_tally() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    programs bigint[];
    states text[];
    counts bigint[];
    changed bigint[];
BEGIN
    @BRANCHES@
    END IF;
    IF programs IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO vouchers_programstatecount AS t (program_id, state, n, changes)
    SELECT d.p, '', sum(d.n), sum(d.c)
      FROM unnest(programs, states, counts, changed) AS d(p, s, n, c)
     GROUP BY d.p ORDER BY d.p
    ON CONFLICT (program_id, state)
    DO UPDATE SET n = t.n + EXCLUDED.n, changes = t.changes + EXCLUDED.changes;
    INSERT INTO vouchers_programstatecount AS t (program_id, state, n, changes)
    SELECT d.p, d.s, d.n, d.c
      FROM unnest(programs, states, counts, changed) AS d(p, s, n, c)
     WHERE d.n <> 0 ORDER BY d.p, d.s
    ON CONFLICT (program_id, state)
    DO UPDATE SET n = t.n + EXCLUDED.n, changes = t.changes + EXCLUDED.changes;
    RETURN NULL;
END $$;

CREATE TRIGGER vouchers_application_tally_insert
    AFTER INSERT ON vouchers_application REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION vouchers_application_tally();
CREATE TRIGGER vouchers_application_tally_update
    AFTER UPDATE ON vouchers_application REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION vouchers_application_tally();
CREATE TRIGGER vouchers_application_tally_delete
    AFTER DELETE ON vouchers_application REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION vouchers_application_tally();

INSERT INTO vouchers_programstatecount (program_id, state, n, changes)
SELECT program_id, '', count(*), 0 FROM vouchers_application GROUP BY 1
UNION ALL
SELECT program_id, state, count(*), 0 FROM vouchers_application GROUP BY 1, 2;
""".replace("@BRANCHES@", _BRANCHES)

UNTALLY = """
DROP TRIGGER IF EXISTS vouchers_application_tally_insert ON vouchers_application;
DROP TRIGGER IF EXISTS vouchers_application_tally_update ON vouchers_application;
DROP TRIGGER IF EXISTS vouchers_application_tally_delete ON vouchers_application;
DROP FUNCTION IF EXISTS vouchers_application_tally();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0006_notifications"),
        ("vouchers", "0013_model_names_translated"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="ProgramStateCount",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("state", models.CharField(blank=True, max_length=20)),
                ("n", models.BigIntegerField(default=0)),
                ("changes", models.BigIntegerField(default=0)),
            ],
            options={
                "verbose_name": "applications in a state",
                "verbose_name_plural": "applications by state",
            },
        ),
        migrations.AddIndex(
            model_name="application",
            index=models.Index(
                fields=["city", "submitted_at", "id"], name="application_city_submitted"
            ),
        ),
        migrations.AddIndex(
            model_name="application",
            index=models.Index(
                condition=models.Q(
                    (
                        "state__in",
                        [
                            "submitted",
                            "screening",
                            "in_review",
                            "tie_break",
                            "info_requested",
                            "recommended",
                            "not_recommended",
                            "in_notice",
                        ],
                    )
                ),
                fields=["city", "submitted_at", "id"],
                name="application_in_process",
            ),
        ),
        migrations.AddIndex(
            model_name="application",
            index=models.Index(
                fields=["program", "state", "decided_at", "id"],
                include=("awarded_amount", "notice_ends_at"),
                name="application_decided",
            ),
        ),
        migrations.AddIndex(
            model_name="statechange",
            index=models.Index(
                condition=models.Q(("from_state", "info_requested")),
                fields=["application"],
                name="statechange_info_answered",
            ),
        ),
        migrations.AddIndex(
            model_name="voucher",
            index=models.Index(fields=["city", "-issued_at"], name="voucher_city_issued"),
        ),
        migrations.AddField(
            model_name="programstatecount",
            name="program",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="+", to="vouchers.program"
            ),
        ),
        migrations.AddConstraint(
            model_name="programstatecount",
            constraint=models.UniqueConstraint(
                fields=("program", "state"), name="program_state_count_key"
            ),
        ),
        migrations.RunSQL(TALLY, UNTALLY),
    ]
