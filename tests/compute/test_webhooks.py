"""Webhooks for data centers (issue #19 item 3): signed deliveries over real HTTP to the
data-center simulator, retried with backoff for 24 hours, logged for the console with a
"send again", safe to receive twice; another data center sees none of it."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest

from compute.models import Redemption, RedemptionStatus
from compute.services import redemption_request
from compute.simulator import DataCenterSimulator, serve
from compute.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEvent
from compute.webhooks.services import (
    RETRY_FOR,
    delivery_attempt,
    delivery_redeliver,
    endpoint_create,
    endpoint_revoke,
    retry_delay,
)
from compute.webhooks.signing import signature_header, signature_verify
from portal.errors import DomainError

pytestmark = pytest.mark.usefixtures("eager_tasks")


# --- signing --------------------------------------------------------------------------


def test_a_signature_verifies_and_a_tampered_body_or_key_or_time_does_not():
    body = b'{"id":"e1","type":"batch.applied"}'
    header = signature_header("s3cret", body, now=1_800_000_000)
    assert signature_verify("s3cret", header, body, now=1_800_000_100)
    assert not signature_verify("s3cret", header, body + b" ", now=1_800_000_100)
    assert not signature_verify("other", header, body, now=1_800_000_100)
    assert not signature_verify("s3cret", header, body, now=1_800_000_000 + 301)  # replayed
    assert not signature_verify("s3cret", "t=abc,v1=00", body)
    assert not signature_verify("s3cret", "", body)


def test_the_documented_recipe_checks_a_signature():
    """docs/api.md's recipe, written out independently of compute.webhooks.signing."""
    import hashlib
    import hmac

    body = b'{"id":"e2"}'
    header = signature_header("k", body, now=1_800_000_000)
    t, v1 = (part.split("=", 1)[1] for part in header.split(","))
    expected = hmac.new(b"k", t.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, v1)


def test_backoff_doubles_from_a_minute_and_stops_at_six_hours():
    assert [retry_delay(n) for n in (1, 2, 3, 4)] == [timedelta(minutes=m) for m in (1, 2, 4, 8)]
    assert retry_delay(20) == timedelta(hours=6)


# --- delivery to the simulator ----------------------------------------------------------


@pytest.fixture
def receiver(ledger_world, operator):
    """The simulator's /webhooks registered for redemption events of ledger_world.dc."""
    sim = DataCenterSimulator(slug="guian", token="t")
    server = serve(sim)
    url = f"http://127.0.0.1:{server.server_address[1]}/webhooks"
    endpoint, sim.webhook_secret = endpoint_create(
        data_center=ledger_world.dc,
        actor=operator,
        url=url,
        events=[WebhookEvent.REDEMPTION_REQUESTED, WebhookEvent.REDEMPTION_CANCELLED],
    )
    yield sim, endpoint
    server.shutdown()
    server.server_close()


def request_redemption(w, user, capture):
    w.redemption.status = RedemptionStatus.CLOSED
    w.redemption.save(update_fields=["status"])
    with capture(execute=True):
        return redemption_request(
            voucher=w.voucher, data_center=w.dc, actor=user, contract_ref="GA-2026-002"
        )


def test_a_redemption_request_reaches_the_data_center_signed(
    ledger_world, receiver, startup_user, django_capture_on_commit_callbacks
):
    sim, endpoint = receiver
    redemption = request_redemption(ledger_world, startup_user, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert (delivery.status, delivery.last_status_code, delivery.attempts) == ("delivered", 200, 1)
    [event] = sim.webhook_events.values()
    assert event["type"] == "redemption.requested"
    assert event["id"] == str(delivery.event_id)
    assert event["data"]["redemption"] == redemption.pk
    assert event["data"]["voucher"] == ledger_world.voucher.code
    assert sim.webhook_refused == 0


def test_an_event_the_endpoint_did_not_choose_is_not_sent(
    ledger_world, receiver, django_capture_on_commit_callbacks
):
    """The receiver chose redemption events only: an applied batch is not sent to it."""
    from tests.compute.conftest import record

    sim, endpoint = receiver
    with django_capture_on_commit_callbacks(execute=True):
        answer = ledger_world.api.post(
            "/api/v1/usage/batches",
            {"records": [record(1, ledger_world.voucher.code)]},
            format="json",
        )
    assert answer.status_code == 202
    assert not WebhookDelivery.objects.filter(endpoint=endpoint).exists()
    assert sim.webhook_events == {}


def test_an_applied_batch_is_sent_to_an_endpoint_that_chose_it(
    ledger_world, operator, django_capture_on_commit_callbacks
):
    from compute.models import UsageBatch
    from tests.compute.conftest import record

    sim = DataCenterSimulator(slug="guian", token="t")
    server = serve(sim)
    try:
        _endpoint, sim.webhook_secret = endpoint_create(
            data_center=ledger_world.dc,
            actor=operator,
            url=f"http://127.0.0.1:{server.server_address[1]}/webhooks",
            events=[WebhookEvent.BATCH_APPLIED],
        )
        with django_capture_on_commit_callbacks(execute=True):
            ledger_world.api.post(
                "/api/v1/usage/batches",
                {"records": [record(1, ledger_world.voucher.code), record(2, "SH-26-NOPE-NOPE")]},
                format="json",
            )
        batch = UsageBatch.objects.get()
        [event] = sim.webhook_events.values()
        assert event["type"] == "batch.applied"
        assert event["data"] == {"batch": batch.pk, "accepted": 1, "duplicate": 0, "rejected": 1}
    finally:
        server.shutdown()
        server.server_close()


def test_a_tampered_body_is_refused_and_a_second_copy_changes_nothing(receiver):
    sim, endpoint = receiver
    url = endpoint.url
    body = json.dumps({"id": "evt-1", "type": "redemption.cancelled", "data": {}}).encode()
    good = signature_header(sim.webhook_secret, body)
    assert httpx.post(url, content=body, headers={"Suanli-Signature": good}).status_code == 200
    assert httpx.post(url, content=body, headers={"Suanli-Signature": good}).status_code == 200
    assert list(sim.webhook_events) == ["evt-1"] and sim.webhook_copies == 1
    tampered = body.replace(b"cancelled", b"requested")
    assert httpx.post(url, content=tampered, headers={"Suanli-Signature": good}).status_code == 400
    assert sim.webhook_refused == 1 and list(sim.webhook_events) == ["evt-1"]


def test_a_failing_receiver_is_retried_with_backoff_then_given_up(
    ledger_world, operator, startup_user, django_capture_on_commit_callbacks
):
    # Nothing listens on this port: every try fails.
    endpoint, _secret = endpoint_create(
        data_center=ledger_world.dc,
        actor=operator,
        url="http://127.0.0.1:9/webhooks",
        events=[WebhookEvent.REDEMPTION_REQUESTED],
    )
    request_redemption(ledger_world, startup_user, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert delivery.last_error.startswith("ConnectError")
    # The next tries: 2, then 4 minutes later, ...
    now = delivery.next_attempt_at
    attempt = delivery_attempt(delivery.pk, now=now)
    assert attempt.retry_in == timedelta(minutes=2)
    # ... until 24 hours after the event: then it has failed for good.
    attempt = delivery_attempt(delivery.pk, now=delivery.created_at + RETRY_FOR)
    assert attempt.status == DeliveryStatus.FAILED and attempt.retry_in is None
    delivery.refresh_from_db()
    assert delivery.status == "failed" and delivery.attempts == 3
    assert delivery_attempt(delivery.pk).retry_in is None  # no more tries


def test_send_again_delivers_the_same_event_id(
    ledger_world, receiver, operator, startup_user, django_capture_on_commit_callbacks
):
    sim, endpoint = receiver
    request_redemption(ledger_world, startup_user, django_capture_on_commit_callbacks)
    first = WebhookDelivery.objects.get(endpoint=endpoint)
    with django_capture_on_commit_callbacks(execute=True):
        again = delivery_redeliver(delivery=first, actor=operator)
    again.refresh_from_db()
    assert again.pk != first.pk and again.event_id == first.event_id
    assert again.status == "delivered"
    assert len(sim.webhook_events) == 1 and sim.webhook_copies == 1


def test_a_revoked_endpoint_gets_nothing_more(
    ledger_world, receiver, operator, startup_user, django_capture_on_commit_callbacks
):
    sim, endpoint = receiver
    endpoint_revoke(endpoint=endpoint, actor=operator)
    request_redemption(ledger_world, startup_user, django_capture_on_commit_callbacks)
    assert not WebhookDelivery.objects.filter(endpoint=endpoint).exists()
    assert sim.webhook_events == {}


def test_registering_needs_events_and_a_full_address(ledger_world, operator):
    for url, events, field in (
        ("http://127.0.0.1/h", [], "events"),
        ("http://127.0.0.1/h", ["voucher.stolen"], "events"),
        ("ftp://example.cn/h", [WebhookEvent.BATCH_APPLIED], "url"),
    ):
        with pytest.raises(DomainError) as error:
            endpoint_create(data_center=ledger_world.dc, actor=operator, url=url, events=events)
        assert error.value.code == "invalid" and list(error.value.fields) == [field]


# --- the console ----------------------------------------------------------------------


def test_the_console_registers_shows_the_secret_once_and_lists_deliveries(
    client, ledger_world, operator, startup_user, django_capture_on_commit_callbacks
):
    client.force_login(operator)
    response = client.post(
        "/dc/guian/webhooks/",
        {"url": "http://127.0.0.1:9/hook", "events": ["redemption.requested"]},
    )
    assert response.status_code == 200
    secret = response.context["secret"]
    assert len(secret) == 64 and secret in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    request_redemption(ledger_world, startup_user, django_capture_on_commit_callbacks)
    page = client.get("/dc/guian/webhooks/").content.decode()
    assert secret not in page
    delivery = WebhookDelivery.objects.get()
    assert str(delivery.event_id) in page
    # Another data center's operator: 404 on the page's objects.
    ledger_world.other_dc.operators.add(startup_user)
    client.force_login(startup_user)
    assert client.get("/dc/guian/webhooks/").status_code == 404
    assert client.get(f"/dc/zhongwei/webhooks/deliveries/{delivery.pk}/again/").status_code == 404
    assert client.get(f"/dc/zhongwei/webhooks/{delivery.endpoint_id}/revoke/").status_code == 404


def test_emitting_with_no_endpoint_writes_nothing(
    ledger_world, startup_user, django_capture_on_commit_callbacks
):
    request_redemption(ledger_world, startup_user, django_capture_on_commit_callbacks)
    assert not WebhookDelivery.objects.exists()
    assert Redemption.objects.filter(contract_ref="GA-2026-002").exists()


def test_a_suspended_voucher_is_told_to_the_data_centers_holding_it(
    ledger_world, operator, shanghai, django_capture_on_commit_callbacks
):
    from vouchers.ledger import voucher_resume, voucher_suspend

    sim = DataCenterSimulator(slug="guian", token="t")
    server = serve(sim)
    try:
        endpoint, sim.webhook_secret = endpoint_create(
            data_center=ledger_world.dc,
            actor=operator,
            url=f"http://127.0.0.1:{server.server_address[1]}/webhooks",
            events=[WebhookEvent.VOUCHER_SUSPENDED, WebhookEvent.VOUCHER_RESUMED],
        )
        with django_capture_on_commit_callbacks(execute=True):
            voucher_suspend(voucher=ledger_world.voucher, actor=shanghai.manager, reason="核查")
        with django_capture_on_commit_callbacks(execute=True):
            voucher_resume(voucher=ledger_world.voucher, actor=shanghai.manager, reason="核查完毕")
        events = sorted(
            (e["type"], e["data"]["voucher"], e["data"]["status"])
            for e in sim.webhook_events.values()
        )
        code = ledger_world.voucher.code
        assert events == [
            ("voucher.resumed", code, "active"),
            ("voucher.suspended", code, "suspended"),
        ]
        # The other voucher's data center holds nothing of this one: nothing for it.
        assert WebhookDelivery.objects.exclude(endpoint=endpoint).count() == 0
    finally:
        server.shutdown()
        server.server_close()


def test_production_refuses_local_and_private_endpoints(ledger_world, operator, settings):
    """Workers POST wherever an endpoint points: in production not into the portal's
    own network (its database, Redis, a cloud metadata service)."""
    settings.WEBHOOK_PRIVATE_ADDRESSES = False
    for url in (
        "http://hooks.example.cn/h",  # not https
        "https://127.0.0.1:5432/h",
        "https://localhost/h",
        "https://10.1.2.3/h",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/h",
    ):
        with pytest.raises(DomainError) as error:
            endpoint_create(
                data_center=ledger_world.dc,
                actor=operator,
                url=url,
                events=[WebhookEvent.BATCH_APPLIED],
            )
        assert error.value.code == "invalid" and list(error.value.fields) == ["url"], url
    endpoint, _secret = endpoint_create(
        data_center=ledger_world.dc,
        actor=operator,
        url="https://hooks.example.cn/suanli",
        events=[WebhookEvent.BATCH_APPLIED],
    )
    assert endpoint.url == "https://hooks.example.cn/suanli"
    assert WebhookDelivery.objects.count() == 0
