"""Implausible patterns (nightly): a voucher drained much faster than its plan, records
back to back around the clock with identical quantities for days, and many companies'
usage at one data center starting in the same minute. One SQL statement each over the
window's records; every threshold is a named constant below (or the program's setting)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from django.db import connection

from compute.integrity.models import FindingRule, Severity
from compute.integrity.nightly import MAX_RECORDS
from compute.integrity.services import FindingDraft

# The thresholds of the three patterns, each a constant here (docs/architecture.md,
# "Integrity checks", lists them). How much faster than planned a voucher may drain is
# the program's setting, `IntegrityRules.drain_factor` (default
# compute.integrity.models.DEFAULT_DRAIN_FACTOR); only programs whose rules check usage
# against the plan (`check_plan`) are checked: the pace is the plan's.

# Fast drain: the voucher's card-hours over the last DRAIN_DAYS days, against its plan's
# pace over as many days (plan card-hours x DRAIN_DAYS / validity days) x the factor…
DRAIN_DAYS = 7
# …and only once the week's use exceeds this many card-hours: a trickle against a tiny
# plan is not worth a finding.
DRAIN_MIN_CARD_HOURS = 10
# Around the clock: one voucher's records at one data center form a chain while each
# starts within CHAIN_GAP of the previous one's end with the same quantity…
CHAIN_GAP = timedelta(minutes=10)
# …and a chain is flagged once it spans CHAIN_DAYS days or more…
CHAIN_DAYS = 3
# …with at least CHAIN_MIN_RECORDS records (one 3-day record is not a pattern).
CHAIN_MIN_RECORDS = 3
# Same minute: usage of this many companies or more at one data center starting in the
# same minute (UTC, truncated) in one city.
SAME_MINUTE_COMPANIES = 5

_DRAIN = """
WITH recent AS (
    SELECT r.voucher_id, r.data_center_id, sum(r.quantity) AS used,
           (array_agg(r.id ORDER BY r.id))[1:%(limit)s] AS ids
    FROM compute_usagerecord r
    WHERE r.status = 'accepted' AND r.ended_at > %(since)s AND r.ended_at <= %(end)s
    GROUP BY 1, 2
),
per_voucher AS (SELECT voucher_id, sum(used) AS used FROM recent GROUP BY 1),
paced AS (
    SELECT v.id, v.city_id, v.company_id, p.used, ir.drain_factor,
           (SELECT sum(c.hours) FROM vouchers_computeplanrow c
            WHERE c.application_id = v.application_id)
             * %(days)s / (v.valid_until - v.valid_from + 1) AS planned
    FROM per_voucher p
    JOIN vouchers_voucher v ON v.id = p.voucher_id
    JOIN compute_integrityrules ir ON ir.program_id = v.program_id AND ir.check_plan
    WHERE v.application_id IS NOT NULL
)
SELECT p.id, p.city_id, p.company_id, p.used, round(p.planned, 1), p.drain_factor,
       r.data_center_id, r.ids
FROM paced p JOIN recent r ON r.voucher_id = p.id
WHERE p.planned > 0 AND p.used > %(minimum)s AND p.used > p.planned * p.drain_factor
"""

_CHAINS = """
WITH r AS (
    SELECT id, voucher_id, data_center_id, quantity, started_at, ended_at,
           CASE WHEN started_at - lag(ended_at) OVER w BETWEEN interval '0' AND %(gap)s
                     AND lag(quantity) OVER w = quantity THEN 0 ELSE 1 END AS brk
    FROM compute_usagerecord
    WHERE status = 'accepted' AND ended_at > %(start)s AND started_at < %(end)s
    WINDOW w AS (PARTITION BY voucher_id, data_center_id ORDER BY started_at, id)
),
g AS (
    SELECT *, sum(brk) OVER (PARTITION BY voucher_id, data_center_id
                             ORDER BY started_at, id) AS chain
    FROM r
)
SELECT g.voucher_id, v.city_id, v.company_id, g.data_center_id, min(g.started_at),
       max(g.ended_at), count(*), min(g.quantity), (array_agg(g.id ORDER BY g.id))[1:%(limit)s]
FROM g JOIN vouchers_voucher v ON v.id = g.voucher_id
GROUP BY g.voucher_id, v.city_id, v.company_id, g.data_center_id, g.chain
HAVING max(g.ended_at) - min(g.started_at) >= %(span)s AND count(*) >= %(records)s
"""

_SAME_MINUTE = """
SELECT v.city_id, r.data_center_id, date_trunc('minute', r.started_at) AS minute,
       count(DISTINCT v.company_id), (array_agg(r.id ORDER BY r.id))[1:%(limit)s]
FROM compute_usagerecord r
JOIN vouchers_voucher v ON v.id = r.voucher_id
WHERE r.status = 'accepted' AND r.started_at >= %(start)s AND r.started_at < %(end)s
GROUP BY 1, 2, 3
HAVING count(DISTINCT v.company_id) >= %(companies)s
"""


def _rows(sql: str, params: dict) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, {"limit": MAX_RECORDS, **params})
        return cursor.fetchall()


def drain_check(*, end: datetime) -> list[FindingDraft]:
    since = end - timedelta(days=DRAIN_DAYS)
    week = f"{end:%G-W%V}"
    params = {"since": since, "end": end, "days": DRAIN_DAYS, "minimum": DRAIN_MIN_CARD_HOURS}
    return [
        FindingDraft(
            city_id=city_id,
            data_center_id=dc_id,
            rule=FindingRule.FAST_DRAIN,
            severity=Severity.MEDIUM,
            key=f"{voucher_id} {week}",
            evidence={
                "days": DRAIN_DAYS,
                "card_hours": str(used),
                "planned_card_hours": str(planned),
                "factor": str(factor),
            },
            voucher_id=voucher_id,
            company_id=company_id,
            record_ids=list(ids),
        )
        for voucher_id, city_id, company_id, used, planned, factor, dc_id, ids in _rows(
            _DRAIN, params
        )
    ]


def chain_check(*, start: datetime, end: datetime) -> list[FindingDraft]:
    params = {
        "start": start,
        "end": end,
        "gap": CHAIN_GAP,
        "span": timedelta(days=CHAIN_DAYS),
        "records": CHAIN_MIN_RECORDS,
    }
    return [
        FindingDraft(
            city_id=city_id,
            data_center_id=dc_id,
            rule=FindingRule.AROUND_THE_CLOCK,
            severity=Severity.MEDIUM,
            key=f"{voucher_id} {first.isoformat()}",
            evidence={
                "from": first.isoformat(),
                "until": last.isoformat(),
                "records": count,
                "quantity": str(quantity),
            },
            voucher_id=voucher_id,
            company_id=company_id,
            record_ids=list(ids),
        )
        for voucher_id, city_id, company_id, dc_id, first, last, count, quantity, ids in _rows(
            _CHAINS, params
        )
    ]


def same_minute_check(*, start: datetime, end: datetime) -> list[FindingDraft]:
    params = {"start": start, "end": end, "companies": SAME_MINUTE_COMPANIES}
    return [
        FindingDraft(
            city_id=city_id,
            data_center_id=dc_id,
            rule=FindingRule.SAME_MINUTE,
            severity=Severity.LOW,
            key=f"{city_id} {minute.isoformat()}",
            evidence={"minute": minute.isoformat(), "companies": companies},
            record_ids=list(ids),
        )
        for city_id, dc_id, minute, companies, ids in _rows(_SAME_MINUTE, params)
    ]


def pattern_checks(*, start: datetime, end: datetime) -> Iterator[list[FindingDraft]]:
    """Each pattern's drafts in turn (the caller raises each in its own transaction)."""
    yield drain_check(end=end)
    yield chain_check(start=start, end=end)
    yield same_minute_check(start=start, end=end)
