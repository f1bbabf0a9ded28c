"""The costly checks, run nightly from Celery beat (`compute.tasks.integrity_nightly`):
the capacity check and the usage patterns. Each is a few set-wise SQL statements over
the window's records; what they find is raised as findings keyed so that running a
check again (the next night, by hand) raises nothing twice.
"""

from __future__ import annotations

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

# Average cards of each model in use per hour bucket, per city registration, against
# the inventory declared for that hour. A registration that declared no inventory at
# all is not checked; one that did has zero cards of a model it did not declare.
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
    SELECT v.city_id, r.data_center_id, r.resource, r.started_at, r.ended_at,
           -- float8, not numeric: a million hour buckets of numeric division took seconds
           r.quantity::float8 * 3600 / extract(epoch FROM r.ended_at - r.started_at)::float8
             AS cards
    FROM compute_usagerecord r
    JOIN vouchers_voucher v ON v.id = r.voucher_id
    JOIN regs g ON g.city_id = v.city_id AND g.data_center_id = r.data_center_id
    WHERE r.status = 'accepted' AND r.ended_at > %(start)s AND r.started_at < %(end)s
      AND r.ended_at > r.started_at
),
load AS (
    SELECT city_id, data_center_id, resource, h,
           sum(cards * extract(epoch FROM least(ended_at, h + interval '1 hour')
                                    - greatest(started_at, h))::float8 / 3600) AS used
    FROM recs, generate_series(date_trunc('hour', greatest(started_at, %(start)s)),
                               least(ended_at, %(end)s) - interval '1 microsecond',
                               interval '1 hour') AS h
    GROUP BY 1, 2, 3, 4
)
SELECT l.city_id, l.data_center_id, l.resource, l.h, round(l.used::numeric, 1),
       coalesce(i.cards, 0)
FROM load l
LEFT JOIN inv i ON i.city_id = l.city_id AND i.data_center_id = l.data_center_id
     AND i.accelerator = l.resource AND l.h >= i.from_ts AND l.h < i.until_ts
WHERE l.used > coalesce(i.cards, 0) + 0.05
ORDER BY 1, 2, 3, 4
"""

# The records overlapping the flagged hours, all in one pass (the same hour buckets,
# joined to the flagged ones by hash): per city, data center, model and UTC day.
_CAPACITY_RECORDS = """
WITH f AS (
    SELECT * FROM unnest(%(cities)s::bigint[], %(dcs)s::bigint[], %(resources)s::text[],
                         %(hours)s::timestamptz[]) AS f(city_id, data_center_id, resource, h)
)
SELECT DISTINCT f.city_id, f.data_center_id, f.resource,
       to_char(f.h AT TIME ZONE 'UTC', 'YYYY-MM-DD'), r.id, r.voucher_id
FROM compute_usagerecord r
JOIN vouchers_voucher v ON v.id = r.voucher_id
CROSS JOIN LATERAL generate_series(date_trunc('hour', greatest(r.started_at, %(start)s)),
                                   least(r.ended_at, %(end)s) - interval '1 microsecond',
                                   interval '1 hour') AS b(hour)
JOIN f ON f.h = b.hour AND f.city_id = v.city_id AND f.data_center_id = r.data_center_id
      AND f.resource = r.resource
WHERE r.status = 'accepted' AND r.ended_at > %(start)s AND r.started_at < %(end)s
  AND r.data_center_id = ANY(%(dcs)s::bigint[]) AND r.ended_at > r.started_at
"""


def capacity_check(
    *, start: datetime, end: datetime, data_center_id: int | None = None
) -> list[FindingDraft]:
    """Hours between `start` and `end` where a data center's usage of a model for a
    city needed more cards than it declared; one draft per city, data center, model
    and UTC day with such hours. Two statements whatever the data: the hour buckets,
    then the records in the flagged ones."""
    params = {"start": start, "end": end, "dc": data_center_id}
    with connection.cursor() as cursor:
        cursor.execute(_CAPACITY, params)
        rows = cursor.fetchall()
    if not rows:
        return []
    Key = tuple[int, int, str, str]
    days: dict[Key, list[tuple[datetime, Decimal, int]]] = defaultdict(list)
    for city_id, dc_id, resource, hour, used, cards in rows:
        hour = hour.astimezone(UTC)
        days[(city_id, dc_id, resource, hour.date().isoformat())].append((hour, used, cards))
    with transaction.atomic(), connection.cursor() as cursor:
        # The flagged hours come as arrays, which the planner cannot size: it would
        # loop over them for every record-hour. A hash join it must be.
        cursor.execute("SET LOCAL enable_nestloop = off; SET LOCAL enable_mergejoin = off")
        cursor.execute(
            _CAPACITY_RECORDS,
            {
                "start": start,
                "end": end,
                "cities": [r[0] for r in rows],
                "dcs": [r[1] for r in rows],
                "resources": [r[2] for r in rows],
                "hours": [r[3] for r in rows],
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
                    "records": len(records),
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
