"""Run the reference data-center simulator (compute/simulator.py) over HTTP."""

from __future__ import annotations

import time
from datetime import date, datetime
from datetime import time as dtime
from urllib.parse import urlsplit, urlunsplit

import httpx
from django.core.management.base import BaseCommand, CommandError

from compute.simulation import SHANGHAI
from compute.simulator import DataCenterSimulator, serve


def demo_feed_url(feed_url: str, port: int) -> str:
    """`feed_url` with its port replaced by the one its simulator listens on."""
    url = urlsplit(feed_url)
    return urlunsplit(url._replace(netloc=f"{url.hostname}:{port}"))


class Command(BaseCommand):
    help = (
        "Serve a simulated data center's usage feed. With --portal and --key it learns "
        "its redemptions from the portal's API, accepts requested ones through the feed "
        "and bills usage for the active ones. --demo serves every demo data center whose "
        "feed URL points at this machine."
    )

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8100)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--slug", default="sim", help="prefix of the record ids")
        parser.add_argument("--token", default="", help="the bearer token the feed requires")
        parser.add_argument("--portal", default="", help="the portal's base URL")
        parser.add_argument("--key", default="", help="this data center's API key")
        parser.add_argument("--records", type=int, default=20, help="records per tick")
        parser.add_argument("--every", type=float, default=20, help="seconds between ticks")
        parser.add_argument(
            "--demo", action="store_true", help="serve all demo data centers (needs the DB)"
        )

    def handle(self, *args, **o):
        if o["demo"]:
            sims = self._demo(o)
        else:
            if not o["token"]:
                raise CommandError("--token is required.")
            sim = DataCenterSimulator(slug=o["slug"], token=o["token"], seed=o["seed"])
            serve(sim, port=o["port"])
            self.stdout.write(f"{o['slug']}: feed at http://127.0.0.1:{o['port']}/feed")
            sims = [(sim, o["key"])]
        while True:
            for sim, key in sims:
                if o["portal"] and key:
                    self._learn(sim, o["portal"], key)
                sim.generate(o["records"])
            time.sleep(o["every"])

    def _demo(self, o) -> list[tuple[DataCenterSimulator, str]]:
        from compute.integrity.demo import INFLATING
        from compute.models import DataCenter
        from compute.services import api_key_issue, data_center_save
        from portal.audit import SYSTEM
        from portal.models import User

        sims = []
        self.servers = []
        admin = User.objects.filter(is_superuser=True, is_active=True).order_by("pk").first()
        for dc in DataCenter.objects.exclude(feed_url="").order_by("slug"):
            url = urlsplit(dc.feed_url)
            if url.hostname not in ("127.0.0.1", "localhost"):
                continue
            sim = DataCenterSimulator(slug=dc.slug, token=dc.feed_token, seed=dc.pk)
            if dc.slug == INFLATING:  # its findings show in the demo (compute/integrity/demo.py)
                sim.arm("inflate", count=3)
            # A port the system picks is never one in use (the portal's own, another
            # program's): the data center's feed address follows it, as an operator
            # would re-register a moved feed (audited, data_center.update).
            server = serve(sim, port=0)
            self.servers.append(server)
            feed_url = demo_feed_url(dc.feed_url, server.server_address[1])
            if feed_url != dc.feed_url:
                if admin is None:
                    raise CommandError("No platform admin to record the feed move; run seed_demo.")
                dc.feed_url = feed_url
                data_center_save(actor=admin, data_center=dc, changed=["feed_url"])
            if admin is None:
                raise CommandError("No platform admin to register the webhooks; run seed_demo.")
            # The demo's data centers hear of changes by webhook, signatures checked.
            self._hear_webhooks(sim, dc, admin, dc.feed_url)
            _key, raw = api_key_issue(data_center=dc, actor=SYSTEM, name="simulator")
            sims.append((sim, raw))
            self.stdout.write(f"{dc.slug}: feed at {dc.feed_url}")
        if not sims:
            raise CommandError("No data center has a local feed URL; run seed_demo first.")
        return sims

    def _hear_webhooks(self, sim: DataCenterSimulator, dc, admin, feed_url: str) -> None:
        """Register the simulator's /webhooks for every event (the endpoints of an
        earlier run on this machine revoked), so the demo's data centers hear of
        changes as they happen and check each signature."""
        from compute.webhooks.models import WebhookEndpoint, WebhookEvent
        from compute.webhooks.services import endpoint_create, endpoint_revoke

        url = urlsplit(feed_url)
        for old in WebhookEndpoint.objects.filter(data_center=dc, revoked_at=None):
            if urlsplit(old.url).hostname in ("127.0.0.1", "localhost"):
                endpoint_revoke(endpoint=old, actor=admin)
        _endpoint, sim.webhook_secret = endpoint_create(
            data_center=dc,
            actor=admin,
            url=urlunsplit(url._replace(path="/webhooks", query="")),
            events=list(WebhookEvent.values),
        )

    def _learn(self, sim: DataCenterSimulator, portal: str, key: str) -> None:
        """Like a real billing system: read our redemptions, accept new requests."""
        try:
            response = httpx.get(
                f"{portal.rstrip('/')}/api/v1/redemptions",
                headers={"Authorization": f"Bearer {key}"},
                params={"limit": 1000},
                timeout=10,
            )
        except httpx.HTTPError:
            return
        if response.status_code != 200:
            return
        for redemption in response.json()["results"]:
            if redemption["status"] == "active":
                code = redemption["voucher"]
                if code not in sim.valid_from:
                    detail = httpx.get(
                        f"{portal.rstrip('/')}/api/v1/vouchers/{code}",
                        headers={"Authorization": f"Bearer {key}"},
                        timeout=10,
                    )
                    if detail.status_code == 200:
                        day = date.fromisoformat(detail.json()["valid_from"])
                        sim.valid_from[code] = datetime.combine(day, dtime.min, tzinfo=SHANGHAI)
                sim.hold(code)
            elif redemption["status"] == "requested":
                sim.answer_redemption(redemption["id"], "active", redemption["contract_ref"])
