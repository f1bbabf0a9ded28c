"""Push realistic usage for a data center through the real HTTP API, as its billing
system would: list its active redemptions, push a batch, wait for the results."""

from __future__ import annotations

import random
import time as clock
from collections import Counter
from datetime import date, datetime, time
from decimal import Decimal

import httpx
from django.core.management.base import BaseCommand, CommandError

from compute.models import DataCenter
from compute.services import api_key_issue
from compute.simulation import SHANGHAI, usage_records
from portal.audit import SYSTEM


def _valid_from(client: httpx.Client, codes: list[str]) -> dict[str, datetime]:
    """When each voucher starts, from the API (a billing system checks before billing)."""
    starts = {}
    for code in codes:
        response = client.get(f"/api/v1/vouchers/{code}")
        if response.status_code == 200:
            day = date.fromisoformat(response.json()["valid_from"])
            starts[code] = datetime.combine(day, time.min, tzinfo=SHANGHAI)
    return starts


class Command(BaseCommand):
    help = "Push simulated usage of a data center (or --all) to the portal's API over HTTP."

    def add_arguments(self, parser):
        parser.add_argument("slug", nargs="?", help="data center slug, e.g. guian")
        parser.add_argument("--all", action="store_true", help="every active data center")
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="the portal's base URL")
        parser.add_argument(
            "--key", default="", help="API key; without it a key named 'simulate_push' is issued"
        )
        parser.add_argument("--records", type=int, default=50, help="records per batch")
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument(
            "--every", type=float, default=0, help="repeat every N seconds (0: push once)"
        )

    def handle(self, *args, slug, all, url, key, records, seed, every, **options):
        if not slug and not all:
            raise CommandError("Name a data center slug or pass --all.")
        if slug and all:
            raise CommandError("Either a slug or --all, not both.")
        if not 1 <= records <= 5000:
            raise CommandError("--records must be between 1 and 5000.")
        centers = (
            list(DataCenter.objects.filter(is_active=True))
            if all
            else list(DataCenter.objects.filter(slug=slug))
        )
        if not centers:
            raise CommandError(f"No data center '{slug}'.")
        if key and len(centers) > 1:
            raise CommandError("--key fits one data center only.")
        keys = {
            dc.slug: key or api_key_issue(data_center=dc, actor=SYSTEM, name="simulate_push")[1]
            for dc in centers
        }
        rng = random.Random(seed)
        while True:
            for dc in centers:
                self._push(dc.slug, url, keys[dc.slug], records, rng)
            if not every:
                return
            clock.sleep(every)

    def _push(self, slug: str, url: str, key: str, count: int, rng: random.Random) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            try:
                listed = client.get("/api/v1/redemptions", params={"status": "active"})
            except httpx.TransportError as error:
                self.stderr.write(f"{slug}: cannot reach {url}: {error}")
                return
            if listed.status_code != 200:
                self.stderr.write(f"{slug}: {listed.status_code} {listed.text[:200]}")
                return
            vouchers = sorted({r["voucher"] for r in listed.json()["results"]})
            if not vouchers:
                self.stdout.write(f"{slug}: no active redemptions; nothing to bill.")
                return
            batch = usage_records(
                rng=rng,
                prefix=slug,
                vouchers=vouchers,
                count=count,
                not_before=_valid_from(client, vouchers),
            )
            response = client.post("/api/v1/usage/batches", json={"records": batch})
            if response.status_code not in (200, 202):
                self.stderr.write(f"{slug}: {response.status_code} {response.text[:200]}")
                return
            status_url = response.json()["url"]
            for _ in range(120):
                body = client.get(status_url).json()
                if body["status"] == "done":
                    break
                clock.sleep(0.5)
            else:
                self.stdout.write(f"{slug}: batch {body['id']} still {body['status']}.")
                return
            totals = Counter(r["status"] for r in body["results"])
            covered_sum = sum(
                (Decimal(r["covered_amount"]) for r in body["results"] if r["covered_amount"]),
                Decimal("0"),
            )
            self.stdout.write(
                f"{slug}: batch {body['id']}: {totals['accepted']} accepted, "
                f"{totals['duplicate']} duplicate, {totals['rejected']} rejected; "
                f"¥{covered_sum:,.2f} covered by vouchers."
            )
