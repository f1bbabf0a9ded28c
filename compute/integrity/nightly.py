"""The costly checks, run nightly from Celery beat (`compute.tasks.integrity_nightly`):
the capacity check and the usage patterns. Each is a few set-wise SQL statements over
the window's records; what they find is raised as findings keyed so that running a
check again (the next night, by hand) raises nothing twice.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from compute.integrity.models import FindingRule, Severity
from compute.integrity.services import FindingDraft, findings_raise

# Nightly, the checks look this far back (records arrive late within grace days).
WINDOW_DAYS = 35
# A finding names at most this many records (the evidence says how many there were).
MAX_RECORDS = 2000
# Capacity: an hour is flagged when its cards in use (card-hours in the hour bucket)
# exceed the cards declared by more than this; the float8 sums of a bucket carry
# rounding of ~1e-9, and the figures are shown to 0.1 card. Buckets whose level stays
# below it are not generated (no usage).
CAPACITY_SLACK_CARDS = 0.05

# Average cards of each model in use per hour bucket (card-hours in the hour), per city
# registration, against the inventory declared for that hour. A registration that
# declared no inventory at all is not checked; one that did has zero cards of a model
# it did not declare.
#
# Not one row per record and hour (a month of 2,000,000 records is 25,000,000 of them):
# each record gives two events, at the hour buckets of its start and end (clipped to the
# window): +cards / -cards to the level carried from bucket to bucket, and a
# correction for the part of those buckets it did not run (-cards x the fraction before
# its start, +cards x the fraction before its end). The events are summed per bucket
# (a few thousand rows), the level is a running sum over them, a bucket's card-hours
# are its level plus its corrections, and a bucket without events keeps the level of
# the one before it (generated only for those few thousand rows).
_CAPACITY = """
WITH inv AS (
    SELECT g.city_id, g.data_center_id, i.accelerator, i.cards,
           i.valid_from::timestamp AT TIME ZONE c.timezone AS from_ts,
           coalesce(lead(i.valid_from) OVER (PARTITION BY i.registration_id, i.accelerator
                                             ORDER BY i.valid_from)::timestamp
                    AT TIME ZONE c.timezone, 'infinity') AS until_ts
    FROM compute_inventory i
    JOIN compute_registration g ON g.id = i.registration_id
    JOIN portal_city c ON c.id = g.city_id
    WHERE %(dc)s::bigint IS NULL OR g.data_center_id = %(dc)s::bigint
),
regs AS (SELECT DISTINCT city_id, data_center_id FROM inv),
recs AS (
    -- Times as float8 hours since the epoch: date_trunc and numeric extract per row
    -- cost more than everything else together.
    SELECT v.city_id, r.data_center_id, r.resource,
           greatest(date_part('epoch', r.started_at), %(start_s)s) / 3600 AS s,
           least(date_part('epoch', r.ended_at), %(end_s)s) / 3600 AS e,
           r.quantity::float8 * 3600
             / (date_part('epoch', r.ended_at) - date_part('epoch', r.started_at)) AS cards
    FROM compute_usagerecord r
    JOIN vouchers_voucher v ON v.id = r.voucher_id
    JOIN regs g ON g.city_id = v.city_id AND g.data_center_id = r.data_center_id
    WHERE r.status = 'accepted' AND r.ended_at > %(start)s AND r.started_at < %(end)s
      AND r.ended_at > r.started_at
),
events AS (
    SELECT city_id, data_center_id, resource, b, sum(d) AS d, sum(corr) AS corr
    FROM (
        SELECT city_id, data_center_id, resource, floor(s)::bigint AS b, cards AS d,
               -cards * (s - floor(s)) AS corr
        FROM recs
        UNION ALL
        SELECT city_id, data_center_id, resource, floor(e)::bigint, -cards,
               cards * (e - floor(e))
        FROM recs
    ) AS x
    GROUP BY 1, 2, 3, 4
),
levels AS (
    SELECT *, sum(d) OVER w AS level, lead(b) OVER w AS next_b
    FROM events
    WINDOW w AS (PARTITION BY city_id, data_center_id, resource ORDER BY b)
),
load AS (
    SELECT city_id, data_center_id, resource, b, level + corr AS used FROM levels
    UNION ALL
    SELECT city_id, data_center_id, resource, h, level
    FROM levels, generate_series(b + 1, coalesce(next_b, %(end_h)s) - 1) AS h
    WHERE level > %(slack)s
)
SELECT l.city_id, l.data_center_id, l.resource, to_timestamp(l.b * 3600),
       round(l.used::numeric, 1), coalesce(i.cards, 0)
FROM load l
LEFT JOIN inv i ON i.city_id = l.city_id AND i.data_center_id = l.data_center_id
     AND i.accelerator = l.resource AND to_timestamp(l.b * 3600) >= i.from_ts
     AND to_timestamp(l.b * 3600) < i.until_ts
WHERE l.used > coalesce(i.cards, 0) + %(slack)s AND l.b * 3600 < %(end_s)s
ORDER BY 1, 2, 3, 4
"""

# The records running in each finding's worst hour, in one pass: a record runs in hour
# h if it started in one of the buckets from h - (the longest record's length) to h and
# ended after h, so each worst hour is spread over those start buckets and joined to
# the records by hash on (city, data center, model, start bucket). (Every flagged hour
# instead: a record for each of them, 12 million rows for a month of 2 million.)
_CAPACITY_RECORDS = """
WITH span AS (
    SELECT coalesce(max(date_part('epoch', ended_at) - date_part('epoch', started_at)), 0)
             / 3600 AS longest
    FROM compute_usagerecord
    WHERE status = 'accepted' AND ended_at > %(start)s AND started_at < %(end)s
      AND data_center_id = ANY(%(dcs)s::bigint[])
),
f AS MATERIALIZED (
    SELECT f.*, sb
    FROM unnest(%(cities)s::bigint[], %(dcs)s::bigint[], %(resources)s::text[],
                %(hours)s::bigint[], %(days)s::text[])
           AS f(city_id, data_center_id, resource, h, day),
         span,
         generate_series(f.h - ceil(span.longest)::bigint, f.h) AS sb
),
rv AS MATERIALIZED (  -- the records with their city first: then one hash join to f
    SELECT r.id, r.voucher_id, v.city_id, r.data_center_id, r.resource,
           date_part('epoch', r.ended_at) AS ended,
           floor(date_part('epoch', r.started_at) / 3600)::bigint AS sb
    FROM compute_usagerecord r
    JOIN vouchers_voucher v ON v.id = r.voucher_id
    WHERE r.status = 'accepted' AND r.ended_at > %(start)s AND r.started_at < %(end)s
      AND r.data_center_id = ANY(%(dcs)s::bigint[])
)
SELECT f.city_id, f.data_center_id, f.resource, f.day, rv.id, rv.voucher_id
FROM rv
JOIN f ON f.sb = rv.sb AND f.city_id = rv.city_id AND f.data_center_id = rv.data_center_id
      AND f.resource = rv.resource
WHERE rv.ended > f.h * 3600
"""


# For both statements, in their transaction: JIT compiling them cost more than running
# them; the per-bucket sums are a few thousand groups, best hashed in memory; their
# sorts fit in memory too.
_SESSION = "SET LOCAL jit = off; SET LOCAL work_mem = '64MB'; SET LOCAL enable_sort = off"


def capacity_check(
    *, start: datetime, end: datetime, data_center_id: int | None = None
) -> list[FindingDraft]:
    """Hours between `start` and `end` where a data center's usage of a model for a
    city needed more cards than it declared; one draft per city, data center, model
    and UTC day with such hours. Two statements whatever the data: the hour buckets,
    then the records in the flagged ones."""
    params: dict[str, datetime | float | int | None] = {
        "start": start,
        "end": end,
        "start_s": start.timestamp(),
        "end_s": end.timestamp(),
        "end_h": math.ceil(end.timestamp() / 3600),
        "dc": data_center_id,
        "slack": CAPACITY_SLACK_CARDS,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_SESSION)
        cursor.execute(_CAPACITY, params)
        rows = cursor.fetchall()
    if not rows:
        return []
    Key = tuple[int, int, str, str]
    days: dict[Key, list[tuple[datetime, Decimal, int]]] = defaultdict(list)
    for city_id, dc_id, resource, hour, used, cards in rows:
        hour = hour.astimezone(UTC)
        days[(city_id, dc_id, resource, hour.date().isoformat())].append((hour, used, cards))
    worst = {key: max(hours, key=lambda h: h[1] - h[2])[0] for key, hours in days.items()}
    with transaction.atomic(), connection.cursor() as cursor:
        # The worst hours come as arrays, which the planner cannot size: it would loop
        # over them for every record. A hash join it must be.
        cursor.execute(_SESSION + "; SET LOCAL enable_nestloop = off")
        cursor.execute(
            _CAPACITY_RECORDS,
            {
                "start": start,
                "end": end,
                "cities": [k[0] for k in worst],
                "dcs": [k[1] for k in worst],
                "resources": [k[2] for k in worst],
                "hours": [int(h.timestamp()) // 3600 for h in worst.values()],
                "days": [k[3] for k in worst],
            },
        )
        found: dict[Key, list[tuple[int, int]]] = defaultdict(list)
        for city_id, dc_id, resource, day, record_id, voucher_id in cursor:
            found[(city_id, dc_id, resource, day)].append((record_id, voucher_id))
    drafts = []
    for (city_id, dc_id, resource, day), hours in days.items():
        records = sorted(found.get((city_id, dc_id, resource, day), []))
        vouchers = {v for _r, v in records}
        drafts.append(
            FindingDraft(
                city_id=city_id,
                data_center_id=dc_id,
                rule=FindingRule.CAPACITY,
                severity=Severity.HIGH,
                key=f"{city_id} {resource} {day}",
                evidence={
                    "accelerator": resource,
                    "day": day,
                    "hours": [
                        {"hour": h.isoformat(), "cards_used": str(u), "cards_declared": c}
                        for h, u, c in hours
                    ],
                    "peak_cards_used": str(max(u for _h, u, _c in hours)),
                    "worst_hour": worst[(city_id, dc_id, resource, day)].isoformat(),
                    "records_in_worst_hour": len(records),
                },
                voucher_id=next(iter(vouchers)) if len(vouchers) == 1 else None,
                record_ids=[r for r, _v in records[:MAX_RECORDS]],
            )
        )
    return drafts


def integrity_nightly(*, now: datetime | None = None, days: int = WINDOW_DAYS) -> int:
    """Run every nightly check over the last `days` days; raise what they find (each
    check in its own transaction). Returns how many findings were raised."""
    from compute.integrity.patterns import pattern_checks

    end = now or timezone.now()
    start = end - timedelta(days=days)
    raised = 0
    with transaction.atomic():
        raised += len(findings_raise(capacity_check(start=start, end=end)))
    for drafts in pattern_checks(start=start, end=end):
        with transaction.atomic():
            raised += len(findings_raise(drafts))
    return raised
