"""Keeping the usage rollups (compute/rollup_models.py) in step with the usage records.

- `rollups_add_batch`: the last statements of applying a batch, in its transaction, after
  the charges: the batch's records as finally settled (summed in memory per voucher and
  day, not read back) into the program's daily usage and the company's usage, and its
  outcomes into the data center's ingestion counts (two statements; the first only if
  records were accepted).
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
# A batch's usage, summed in Python per voucher × day × chip origin (a few rows per
# voucher), joined to the vouchers for their program and company and summed again.
_USAGE_ROLLUPS = f"""
WITH r AS (
  SELECT v.program_id, v.company_id, t.day, t.domestic, t.records, t.quantity, t.amount,
         t.covered
  FROM unnest(string_to_array(%(vouchers)s, ',')::bigint[],
              string_to_array(%(days)s, ',')::date[],
              string_to_array(%(domestic)s, ',')::boolean[],
              string_to_array(%(records)s, ',')::integer[],
              string_to_array(%(quantity)s, ',')::numeric[],
              string_to_array(%(amount)s, ',')::numeric[],
              string_to_array(%(covered)s, ',')::numeric[])
       AS t(voucher_id, day, domestic, records, quantity, amount, covered)
  JOIN vouchers_voucher v ON v.id = t.voucher_id
),
p AS (
  INSERT INTO compute_programusageday AS t
    (program_id, day, data_center_id, domestic, records, quantity, amount, covered)
  SELECT program_id, day, %(data_center)s, domestic, {_SUMS}
  FROM r GROUP BY 1, 2, 4 ORDER BY 1, 2, 4
  ON CONFLICT (program_id, day, data_center_id, domestic) DO UPDATE SET {_ADD}
)
INSERT INTO compute_companyusage AS t
  (program_id, company_id, records, quantity, amount, covered)
SELECT program_id, company_id, {_SUMS}
FROM r GROUP BY 1, 2 ORDER BY 1, 2
ON CONFLICT (program_id, company_id) DO UPDATE SET {_ADD}
"""  # noqa: S608

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


class UsageSum(NamedTuple):
    """A batch's accepted usage of one voucher on one day (its city's time), by chip
    origin: what `rollups_add_batch` adds."""

    voucher_id: int
    day: date
    domestic: bool
    records: int
    quantity: Decimal
    amount: Decimal
    covered: Decimal


def rollups_add_batch(*, batch_id: int, data_center_id: int, usage: list[UsageSum]) -> None:
    """Add a batch just applied to the rollups: `usage` is its records as finally
    settled (covered amounts final, records dropped under the locks left out), summed by
    the caller from what it holds in memory; the batch's outcomes are read from its row.
    Inside the batch's transaction, after its charges."""
    with connection.cursor() as cursor:
        if usage:
            cursor.execute(
                _USAGE_ROLLUPS,
                {
                    "data_center": data_center_id,
                    "vouchers": ",".join(str(u.voucher_id) for u in usage),
                    "days": ",".join(u.day.isoformat() for u in usage),
                    "domestic": ",".join("t" if u.domestic else "f" for u in usage),
                    "records": ",".join(str(u.records) for u in usage),
                    "quantity": ",".join(str(u.quantity) for u in usage),
                    "amount": ",".join(str(u.amount) for u in usage),
                    "covered": ",".join(str(u.covered) for u in usage),
                },
            )
        cursor.execute(
            _INGEST_ADD.format(outcomes=_BATCH_OUTCOMES.format(where="b.id = %(batch)s")),
            {"batch": batch_id, "tz": settings.TIME_ZONE},
        )


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
