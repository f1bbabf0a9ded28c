"""The costly checks, run nightly from Celery beat (`compute.tasks.integrity_nightly`):
the capacity check and the usage patterns. Each is a few set-wise SQL statements over
the window's records; what they find is raised as findings keyed so that running a
check again (the next night, by hand) raises nothing twice.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
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
           r.quantity / (extract(epoch FROM r.ended_at - r.started_at) / 3600) AS cards
    FROM compute_usagerecord r
    JOIN vouchers_voucher v ON v.id = r.voucher_id
    JOIN regs g ON g.city_id = v.city_id AND g.data_center_id = r.data_center_id
    WHERE r.status = 'accepted' AND r.ended_at > %(start)s AND r.started_at < %(end)s
      AND r.ended_at > r.started_at
),
load AS (
    SELECT city_id, data_center_id, resource, h,
           sum(cards * extract(epoch FROM least(ended_at, h + interval '1 hour')
                                    - greatest(started_at, h)) / 3600) AS used
    FROM recs, generate_series(date_trunc('hour', greatest(started_at, %(start)s)),
                               least(ended_at, %(end)s) - interval '1 microsecond',
                               interval '1 hour') AS h
    GROUP BY 1, 2, 3, 4
)
SELECT l.city_id, l.data_center_id, l.resource, l.h, round(l.used, 1), coalesce(i.cards, 0)
FROM load l
LEFT JOIN inv i ON i.city_id = l.city_id AND i.data_center_id = l.data_center_id
     AND i.accelerator = l.resource AND l.h >= i.from_ts AND l.h < i.until_ts
WHERE l.used > coalesce(i.cards, 0) + 0.05
ORDER BY 1, 2, 3, 4
"""

# The records overlapping the flagged hours of one city, data center and model.
_CAPACITY_RECORDS = """
SELECT r.id, r.voucher_id
FROM compute_usagerecord r
JOIN vouchers_voucher v ON v.id = r.voucher_id
WHERE r.data_center_id = %(dc)s AND v.city_id = %(city)s AND r.resource = %(resource)s
  AND r.status = 'accepted' AND r.ended_at > %(first)s AND r.started_at < %(last)s
  AND EXISTS (SELECT 1 FROM unnest(%(hours)s::timestamptz[]) AS h
              WHERE r.started_at < h + interval '1 hour' AND r.ended_at > h)
ORDER BY r.id
LIMIT %(limit)s
"""


def capacity_check(
    *, start: datetime, end: datetime, data_center_id: int | None = None
) -> list[FindingDraft]:
    """Hours between `start` and `end` where a data center's usage of a model for a
    city needed more cards than it declared; one draft per city, data center, model
    and UTC day with such hours."""
    params = {"start": start, "end": end, "dc": data_center_id}
    with connection.cursor() as cursor:
        cursor.execute(_CAPACITY, params)
        rows = cursor.fetchall()
    days: dict[tuple[int, int, str, str], list[tuple[datetime, Decimal, int]]] = defaultdict(list)
    for city_id, dc_id, resource, hour, used, cards in rows:
        days[(city_id, dc_id, resource, hour.date().isoformat())].append((hour, used, cards))
    drafts = []
    for (city_id, dc_id, resource, day), hours in days.items():
        with connection.cursor() as cursor:
            cursor.execute(
                _CAPACITY_RECORDS,
                {
                    "dc": dc_id,
                    "city": city_id,
                    "resource": resource,
                    "first": hours[0][0],
                    "last": hours[-1][0] + timedelta(hours=1),
                    "hours": [h for h, _u, _c in hours],
                    "limit": MAX_RECORDS,
                },
            )
            found = cursor.fetchall()
        vouchers = {v for _r, v in found}
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
                },
                voucher_id=next(iter(vouchers)) if len(vouchers) == 1 else None,
                record_ids=[r for r, _v in found],
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
