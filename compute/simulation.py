"""Realistic usage as a state-run data center bills it: used by `simulate_push` (and
later by the data-center simulator). Accelerator models and prices are those seen in
city voucher programs: domestic chips at ¥5–15 per accelerator-hour, NVIDIA parts at
¥12–30."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

ACCELERATORS = [
    # (model, domestic, price range per accelerator-hour in yuan)
    ("Ascend 910B", True, (8, 15)),
    ("Hygon DCU Z100", True, (5, 10)),
    ("Cambricon MLU370-X8", True, (6, 11)),
    ("Kunlunxin R200", True, (5, 9)),
    ("NVIDIA A800", False, (14, 24)),
    ("NVIDIA H800", False, (20, 30)),
    ("NVIDIA H20", False, (12, 20)),
    ("NVIDIA L20", False, (6, 12)),
]
SHANGHAI = ZoneInfo("Asia/Shanghai")


def usage_records(
    *,
    rng: random.Random,
    prefix: str,
    vouchers: list[str],
    count: int,
    end: datetime | None = None,
    domestic_share: float = 0.6,
    not_before: dict[str, datetime] | None = None,
) -> list[dict]:
    """`count` usage records spread over the given vouchers, each a 1–24 hour job on 1–64
    accelerators that ended in the last three days before `end` — but not before the
    voucher became valid (`not_before`, by voucher code), as a real bill would."""
    end = end or datetime.now(SHANGHAI)
    domestic = [a for a in ACCELERATORS if a[1]]
    other = [a for a in ACCELERATORS if not a[1]]
    records = []
    stamp = end.strftime("%Y%m%d%H%M%S")
    for i in range(count):
        model, is_domestic, (low, high) = rng.choice(
            domestic if rng.random() < domestic_share else other
        )
        cards = rng.choice([1, 2, 4, 8, 8, 16, 32, 64])
        hours = rng.randint(1, 24)
        voucher = rng.choice(vouchers)
        finished = end - timedelta(minutes=rng.randint(5, 3 * 24 * 60))
        earliest = (not_before or {}).get(voucher)
        if earliest is not None and finished < earliest + timedelta(minutes=1):
            finished = min(end, earliest + timedelta(minutes=rng.randint(1, 60)))
        started = finished - timedelta(hours=hours)
        price = Decimal(rng.randint(low * 100, high * 100)) / 100
        quantity = Decimal(cards * hours).quantize(Decimal("0.001"))
        records.append(
            {
                "record_id": f"{prefix}-{stamp}-{i:05d}-{rng.randrange(16**4):04x}",
                "voucher": voucher,
                "started_at": started.isoformat(timespec="seconds"),
                "ended_at": finished.isoformat(timespec="seconds"),
                "resource": model,
                "domestic": is_domestic,
                "quantity": str(quantity),
                "amount": str((quantity * price).quantize(Decimal("0.01"), ROUND_HALF_UP)),
            }
        )
    return records
