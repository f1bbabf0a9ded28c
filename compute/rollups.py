"""Keeping the usage rollups (compute/rollup_models.py) in step with the usage records.

- `rollups_add_batch`: the last statement of applying a batch, in its transaction, after
  the charges: the batch's records as finally settled (summed in memory, not read back)
  into the program's daily usage and the company's usage, and its outcomes into the data
  center's ingestion counts. One statement of a few rows.
- `rollups_void`: a voided record taken out again, in the void's transaction.
- `rollups_rebuild` / `rollups_verify`: every row recomputed from the records (after a
  bulk load that bypassed the pipeline; the nightly reconciliation's check).

Lock order: these rows are written after the vouchers, redemptions and ledger entries,
before the audit event. They are shared by the batches of a program, company or data
center, so each statement takes them in key order (ORDER BY on the INSERT's SELECT) and
two batches cannot deadlock on them; a batch holds them only from these last statements
to its commit.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import NamedTuple

from django.conf import settings
from django.db import connection, transaction

# Usage records with their day in the city's time (a void's record; every accepted one
# for a rebuild).
_BATCH_RECORDS = """
SELECT u.voucher_id, v.program_id, v.company_id, u.data_center_id,
       (u.ended_at AT TIME ZONE c.timezone)::date AS day, u.resource, u.domestic,
       1 AS records, u.quantity, u.amount, u.covered_amount AS covered
FROM compute_usagerecord u
JOIN vouchers_voucher v ON v.id = u.voucher_id
JOIN portal_city c ON c.id = v.city_id
WHERE {where}
"""

_SUMS = (
    "sum(records) AS records, sum(quantity) AS quantity, sum(amount) AS amount,"
    " sum(covered) AS covered"
)
_ADD = (
    "records = t.records + EXCLUDED.records, quantity = t.quantity + EXCLUDED.quantity,"
    " amount = t.amount + EXCLUDED.amount, covered = t.covered + EXCLUDED.covered"
)

# Every piece of SQL built here is a constant of this module (hence the noqa: S608).
# A batch's usage, summed in memory per program × day × chip origin and per program ×
# company (a few rows whatever the batch's size), and its outcomes: one statement.
_BATCH_ROLLUPS = """
WITH p AS (
  INSERT INTO compute_programusageday AS t
    (program_id, day, data_center_id, domestic, records, quantity, amount, covered)
  SELECT program_id, day, %(data_center)s, domestic, records, quantity, amount, covered
  FROM unnest(string_to_array(%(p_program)s, ',')::bigint[],
              string_to_array(%(p_day)s, ',')::date[],
              string_to_array(%(p_domestic)s, ',')::boolean[],
              string_to_array(%(p_records)s, ',')::integer[],
              string_to_array(%(p_quantity)s, ',')::numeric[],
              string_to_array(%(p_amount)s, ',')::numeric[],
              string_to_array(%(p_covered)s, ',')::numeric[])
       AS r(program_id, day, domestic, records, quantity, amount, covered)
  ORDER BY 1, 2, 4
  ON CONFLICT (program_id, day, data_center_id, domestic) DO UPDATE SET {add}
),
c AS (
  INSERT INTO compute_companyusage AS t
    (program_id, company_id, records, quantity, amount, covered)
  SELECT * FROM unnest(string_to_array(%(c_program)s, ',')::bigint[],
              string_to_array(%(c_company)s, ',')::bigint[],
              string_to_array(%(c_records)s, ',')::integer[],
              string_to_array(%(c_quantity)s, ',')::numeric[],
              string_to_array(%(c_amount)s, ',')::numeric[],
              string_to_array(%(c_covered)s, ',')::numeric[])
       AS r(program_id, company_id, records, quantity, amount, covered)
  ORDER BY 1, 2
  ON CONFLICT (program_id, company_id) DO UPDATE SET {add}
)
{ingest}
"""

# A batch's outcomes: the counts of the batch row, and its rejections by code from its
# results (read only when something was rejected).
_BATCH_OUTCOMES = """
SELECT b.data_center_id, (b.created_at AT TIME ZONE %(tz)s)::date AS day, o.outcome, o.n
FROM compute_usagebatch b
CROSS JOIN LATERAL (
  SELECT 'accepted', b.accepted WHERE b.accepted > 0
  UNION ALL SELECT 'duplicate', b.duplicate WHERE b.duplicate > 0
  UNION ALL
  SELECT e -> 'error' ->> 'code', count(*)
  FROM jsonb_array_elements(CASE WHEN b.rejected > 0 THEN b.results_json::jsonb
                            ELSE '[]'::jsonb END) e
  WHERE e ->> 'status' = 'rejected' GROUP BY 1
) AS o(outcome, n)
WHERE {where}
"""

_INGEST_ADD = """
INSERT INTO compute_ingestday AS t (data_center_id, day, outcome, records)
SELECT data_center_id, day, outcome, sum(n) FROM ({outcomes}) s
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
ON CONFLICT (data_center_id, day, outcome) DO UPDATE SET records = t.records + EXCLUDED.records
"""

_ADD_BATCH = _BATCH_ROLLUPS.format(
    add=_ADD, ingest=_INGEST_ADD.format(outcomes=_BATCH_OUTCOMES.format(where="b.id = %(batch)s"))
)


class Usage(NamedTuple):
    """Sums of accepted usage records (what a rollup row adds)."""

    records: int
    quantity: Decimal
    amount: Decimal
    covered: Decimal


def _column(values, pick) -> str:
    return ",".join(str(pick(v)) for v in values)


def rollups_add_batch(
    *,
    batch_id: int,
    data_center_id: int,
    program_days: dict[tuple[int, date, bool], Usage],
    companies: dict[tuple[int, int], Usage],
) -> None:
    """Add a batch just applied to the rollups: its accepted records as finally settled
    (covered amounts final, records dropped under the locks left out), summed by the
    caller from what it holds in memory per (program, day in the city's time, domestic)
    and per (program, company); its outcomes are read from the batch's row. Inside the
    batch's transaction, after its charges; one statement."""
    days, sums = list(program_days), list(program_days.values())
    pairs, totals = list(companies), list(companies.values())
    params: dict[str, str | int] = {
        "batch": batch_id,
        "tz": settings.TIME_ZONE,
        "data_center": data_center_id,
        "p_program": _column(days, lambda k: k[0]),
        "p_day": _column(days, lambda k: k[1].isoformat()),
        "p_domestic": _column(days, lambda k: "t" if k[2] else "f"),
        "c_program": _column(pairs, lambda k: k[0]),
        "c_company": _column(pairs, lambda k: k[1]),
    }
    for prefix, values in (("p", sums), ("c", totals)):
        for name in Usage._fields:
            params[f"{prefix}_{name}"] = _column(values, lambda u, name=name: getattr(u, name))
    with connection.cursor() as cursor:
        cursor.execute(_ADD_BATCH, params)


_VOID = f"""
WITH r AS ({_BATCH_RECORDS.format(where="u.id = %(record)s")}),
p AS (
  UPDATE compute_programusageday t SET records = t.records - 1,
    quantity = t.quantity - r.quantity, amount = t.amount - r.amount,
    covered = t.covered - r.covered
  FROM r WHERE t.program_id = r.program_id AND t.day = r.day
    AND t.data_center_id = r.data_center_id AND t.domestic = r.domestic
)
UPDATE compute_companyusage t SET records = t.records - 1, quantity = t.quantity - r.quantity,
  amount = t.amount - r.amount, covered = t.covered - r.covered
FROM r WHERE t.program_id = r.program_id AND t.company_id = r.company_id
"""  # noqa: S608


def rollups_void(*, usage_record_id: int) -> None:
    """Take a record out of the usage rollups (call before marking it void, in the
    void's transaction). Its ingestion count stays: it was accepted when it arrived."""
    with connection.cursor() as cursor:
        cursor.execute(_VOID, {"record": usage_record_id})


# --- rebuild and verify ---------------------------------------------------------------------

_ALL_RECORDS = _BATCH_RECORDS.format(where="u.status = 'accepted'")
_ALL_OUTCOMES = _BATCH_OUTCOMES.format(where="b.status = 'done'")

_EXPECTED = {
    "compute_programusageday": (
        "program_id, day, data_center_id, domestic",
        f"SELECT program_id, day, data_center_id, domestic, {_SUMS}"  # noqa: S608
        f" FROM ({_ALL_RECORDS}) r GROUP BY 1, 2, 3, 4",
    ),
    "compute_companyusage": (
        "program_id, company_id",
        f"SELECT program_id, company_id, {_SUMS}"  # noqa: S608
        f" FROM ({_ALL_RECORDS}) r GROUP BY 1, 2",
    ),
    "compute_ingestday": (
        "data_center_id, day, outcome",
        f"SELECT data_center_id, day, outcome, sum(n) AS records FROM ({_ALL_OUTCOMES}) s"  # noqa: S608
        " GROUP BY 1, 2, 3",
    ),
}


def rollups_rebuild() -> None:
    """Write every rollup again from the records and batches (after a bulk load that did
    not go through the pipeline, e.g. seed data). Locks the four tables meanwhile."""
    with transaction.atomic(), connection.cursor() as cursor:
        for table, (key, select) in _EXPECTED.items():
            cursor.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
            cursor.execute(f"DELETE FROM {table}")  # noqa: S608
            columns = key + (
                ", records"
                if table == "compute_ingestday"
                else ", records, quantity, amount, covered"
            )
            cursor.execute(f"INSERT INTO {table} ({columns}) {select}", {"tz": settings.TIME_ZONE})


def rollups_verify(limit: int = 20) -> list[str]:
    """Rollup rows that differ from the records' sums (rows whose sums are all zero
    count as absent), each named; empty when all agree. One statement per table."""
    problems: list[str] = []
    with connection.cursor() as cursor:
        for table, (key, select) in _EXPECTED.items():
            keys = [k.strip() for k in key.split(",")]
            join = " AND ".join(f"a.{k} = e.{k}" for k in keys)
            values = (
                ["records"]
                if table == "compute_ingestday"
                else ["records", "quantity", "amount", "covered"]
            )
            differ = " OR ".join(f"coalesce(a.{v}, 0) <> coalesce(e.{v}, 0)" for v in values)
            key_of = ", ".join(f"coalesce(a.{k}, e.{k})" for k in keys)
            cursor.execute(
                f"SELECT {key_of} FROM {table} a FULL JOIN ({select}) e ON {join}"  # noqa: S608
                f" WHERE {differ} LIMIT %(limit)s",
                {"limit": limit, "tz": settings.TIME_ZONE},
            )
            problems += [
                f"{table} ({', '.join(map(str, row))}) differs from its records"
                for row in cursor.fetchall()
            ]
    return problems
