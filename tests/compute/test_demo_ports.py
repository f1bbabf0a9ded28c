"""`make demo` never trips on ports (issue #14 item 6): the demo's data-center
simulators listen where the system finds room, and the data centers' feed addresses
follow them, so a portal on PORT=8102 (a default feed port before) starts."""

import socket

import httpx
import pytest

from compute.management.commands.run_datacenter_sim import Command, demo_feed_url
from portal.models import AuditEvent
from tests.factories import DataCenterFactory, UserFactory


@pytest.fixture
def port_in_use():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def test_feed_url_takes_the_new_port():
    assert demo_feed_url("http://127.0.0.1:8102/feed", 40123) == "http://127.0.0.1:40123/feed"
    assert demo_feed_url("http://localhost/feed?x=1", 5) == "http://localhost:5/feed?x=1"


@pytest.mark.django_db
def test_demo_simulators_move_off_a_port_in_use_and_the_feed_follows(port_in_use):
    UserFactory(email="root@example.cn", is_superuser=True, is_staff=True)
    local = DataCenterFactory(
        slug="guian", feed_url=f"http://127.0.0.1:{port_in_use}/feed", feed_token="tok-1"
    )
    remote = DataCenterFactory(slug="far", feed_url="https://dc.example.cn/feed", feed_token="t")
    command = Command()
    try:
        sims = command._demo({"demo": True})
        local.refresh_from_db()
        remote.refresh_from_db()
        assert len(sims) == 1
        port = int(local.feed_url.rsplit(":", 1)[1].split("/")[0])
        assert port != port_in_use
        assert local.feed_url == f"http://127.0.0.1:{port}/feed"
        assert remote.feed_url == "https://dc.example.cn/feed"  # not ours to serve
        # The simulator answers at the address the portal's sync will now use.
        answer = httpx.get(local.feed_url, headers={"Authorization": "Bearer tok-1"}, timeout=5)
        assert answer.status_code == 200
        move = AuditEvent.objects.get(action="data_center.update")
        assert move.data["changed"] == ["feed_url"]
        assert move.data["values"]["feed_url"] == local.feed_url
    finally:
        for server in command.servers:
            server.shutdown()
            server.server_close()


@pytest.mark.django_db
def test_demo_simulators_register_their_webhooks_and_hear_them(settings, port_in_use):
    """`run_datacenter_sim --demo` registers each simulator's /webhooks for every event
    (the method existed but was never called: the demo delivered no webhook at all),
    and a delivery reaches the simulator, its signature checked."""
    from compute.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
    from compute.webhooks.services import delivery_attempt, webhook_emit

    settings.WEBHOOK_PRIVATE_ADDRESSES = True  # as in the demo (DEBUG)
    UserFactory(email="root@example.cn", is_superuser=True, is_staff=True)
    local = DataCenterFactory(
        slug="guian", feed_url=f"http://127.0.0.1:{port_in_use}/feed", feed_token="tok-1"
    )
    command = Command()
    try:
        ((sim, _key),) = command._demo({"demo": True})
        local.refresh_from_db()
        endpoint = WebhookEndpoint.objects.get(data_center=local, revoked_at=None)
        assert endpoint.url == local.feed_url.replace("/feed", "/webhooks")
        assert sorted(endpoint.events) == sorted(WebhookEvent.values)
        assert webhook_emit(
            event=WebhookEvent.BATCH_APPLIED, data_center_id=local.pk, data={"batch": 1}
        )
        delivery = WebhookDelivery.objects.get(endpoint=endpoint)
        assert delivery_attempt(delivery.pk).status == "delivered"
        assert str(delivery.event_id) in sim.webhook_events and sim.webhook_refused == 0
    finally:
        for server in command.servers:
            server.shutdown()
            server.server_close()
