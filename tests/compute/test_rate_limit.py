"""Limits of the data-center API that must hold under load: requests per data center
(counted atomically in Redis, tested with real concurrent clients), failed
authentication per source address, and failing open when Redis is gone. Also the list
endpoints' cursors: whatever a client puts there is a 404, never a 500."""

from __future__ import annotations

import base64
import logging
import socket
import threading
import time

import httpx
import pytest
from rest_framework.test import APIClient

from compute.api.base import DataCenterThrottle
from compute.services import api_key_issue
from portal import ratelimit
from portal.audit import SYSTEM

CLIENTS = 32
WRONG_KEY = "Bearer sk_live_00000000_nope"


@pytest.fixture(autouse=True)
def _fresh_limiter():
    # The limiter keeps one client (and its "Redis is down" state) per URL per process.
    ratelimit.reset()
    yield
    ratelimit.reset()


def error_code(response) -> str:
    assert response["Content-Type"] == "application/json"
    return response.json()["error"]["code"]


def client_from(address: str, authorization: str | None = None) -> APIClient:
    client = APIClient(REMOTE_ADDR=address)
    if authorization:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    return client


def set_rate(monkeypatch, rate: str) -> None:
    # The old throttle read its rates once at import; patching the class works for both.
    monkeypatch.setattr(DataCenterThrottle, "THROTTLE_RATES", {"datacenter": rate})


# --- requests per data center ------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_clients_of_one_data_center_get_no_more_than_the_limit(
    ledger_world, live_server, monkeypatch
):
    w = ledger_world
    limit = 10
    # An hour's allowance: nothing refills while the test runs, however slow the machine.
    set_rate(monkeypatch, f"{limit}/hour")
    # The allowance is the data center's: its keys share it.
    keys = [w.key] + [api_key_issue(data_center=w.dc, actor=SYSTEM)[1] for _ in range(3)]
    url = f"/api/v1/vouchers/{w.voucher.code}"
    barrier = threading.Barrier(CLIENTS)
    responses: list[httpx.Response | None] = [None] * CLIENTS
    errors: list[BaseException] = []

    def call(i: int) -> None:
        headers = {"Authorization": f"Bearer {keys[i % len(keys)]}"}
        try:
            with httpx.Client(base_url=live_server.url, headers=headers, timeout=60) as client:
                barrier.wait(timeout=30)
                responses[i] = client.get(url)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    codes = [r.status_code for r in responses]
    assert sorted(set(codes)) == [200, 429], codes
    assert codes.count(200) == limit, f"{codes.count(200)} of {CLIENTS} got through"
    for r in responses:
        if r.status_code == 429:
            assert r.json()["error"]["code"] == "throttled"
            assert int(r.headers["Retry-After"]) > 0
    # Another data center has its own allowance.
    other = httpx.get(
        f"{live_server.url}/api/v1/vouchers/{w.other_voucher.code}",
        headers={"Authorization": f"Bearer {w.other_key}"},
    )
    assert other.status_code == 200


def test_retry_after_says_when_the_next_request_is_allowed(ledger_world, settings):
    # Read from settings at request time (the old throttle froze its rates at import).
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"datacenter": "2/s"},
    }
    url = f"/api/v1/vouchers/{ledger_world.voucher.code}"
    codes = [ledger_world.api.get(url).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    refused = ledger_world.api.get(url)
    assert error_code(refused) == "throttled"
    assert refused["Retry-After"] == "1"
    # One request is allowed again half a second later (2/s), not a whole window later.
    # (Half a second, not less: the next request must still find no allowance, however
    # slowly it is served, e.g. under coverage.)
    time.sleep(0.55)
    assert ledger_world.api.get(url).status_code == 200
    assert ledger_world.api.get(url).status_code == 429


def test_retry_after_of_a_per_minute_limit_is_the_interval(ledger_world, monkeypatch):
    set_rate(monkeypatch, "3/min")
    url = f"/api/v1/vouchers/{ledger_world.voucher.code}"
    assert [ledger_world.api.get(url).status_code for _ in range(3)] == [200, 200, 200]
    refused = ledger_world.api.get(url)
    assert refused.status_code == 429
    # 3/min: one more every 20 s; not "wait for the whole minute to pass".
    assert refused["Retry-After"] == "20"
    assert "20" in refused.json()["error"]["message"]


def test_gcra_lets_a_burst_of_the_limit_then_refills_at_the_rate(ledger_world):
    rate = ratelimit.Rate.parse("5/s")
    limiter = ratelimit.Limiter("test", rate)
    decisions = [limiter.hit("x") for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert 0 < decisions[-1].retry_after <= 0.2
    assert limiter.hit("y").allowed  # another subject has its own allowance
    time.sleep(decisions[-1].retry_after + 0.02)
    assert limiter.hit("x").allowed
    assert not limiter.hit("x").allowed


@pytest.mark.parametrize(
    ("text", "expected"),
    [("100/min", (100, 60)), ("20/m", (20, 60)), ("5/s", (5, 1)), ("1/hour", (1, 3600)),
     ("2/day", (2, 86400)), (None, None), ("", None)],
)  # fmt: skip
def test_rates_read_like_drf(text, expected):
    rate = ratelimit.Rate.parse(text)
    assert (rate and (rate.limit, rate.period)) == expected


@pytest.mark.parametrize("text", ["100", "0/min", "-1/min", "x/min", "10/fortnight"])
def test_a_malformed_rate_is_a_configuration_error(text):
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured):
        ratelimit.Rate.parse(text)


# --- failed authentication per address ---------------------------------------------------


def test_wrong_key_flood_from_one_address_is_throttled_before_the_key_is_checked(
    ledger_world, settings, django_assert_num_queries
):
    settings.API_AUTH_FAILURE_LIMIT = "5/hour"
    url = f"/api/v1/vouchers/{ledger_world.voucher.code}"
    attacker = client_from("203.0.113.7", WRONG_KEY)
    codes = [attacker.get(url).status_code for _ in range(8)]
    assert codes == [401] * 5 + [429] * 3
    with django_assert_num_queries(0):
        refused = attacker.get(url)
    assert refused.status_code == 429
    assert error_code(refused) == "throttled"
    assert int(refused["Retry-After"]) > 0
    # Even the right key from that address waits: the key is not looked at.
    assert client_from("203.0.113.7", f"Bearer {ledger_world.key}").get(url).status_code == 429
    # Another address is unaffected, with the right key or a wrong one.
    assert client_from("203.0.113.8", f"Bearer {ledger_world.key}").get(url).status_code == 200
    assert client_from("203.0.113.8", WRONG_KEY).get(url).status_code == 401


def test_every_kind_of_failed_authentication_counts(ledger_world, settings):
    settings.API_AUTH_FAILURE_LIMIT = "3/hour"
    url = f"/api/v1/vouchers/{ledger_world.voucher.code}"
    headers = ["Basic dXNlcjpwYXNz", "Bearer", WRONG_KEY]
    assert [client_from("198.51.100.1", h).get(url).status_code for h in headers] == [401] * 3
    assert client_from("198.51.100.1", WRONG_KEY).get(url).status_code == 429
    # Good requests do not use up the failure allowance.
    good = client_from("198.51.100.2", f"Bearer {ledger_world.key}")
    assert [good.get(url).status_code for _ in range(5)] == [200] * 5
    assert client_from("198.51.100.2", WRONG_KEY).get(url).status_code == 401


def test_an_ipv6_client_is_counted_by_its_slash_64(ledger_world, settings):
    # One host usually holds a whole /64; counting single addresses would let it rotate.
    settings.API_AUTH_FAILURE_LIMIT = "2/hour"
    url = f"/api/v1/vouchers/{ledger_world.voucher.code}"
    assert client_from("2001:db8::1", WRONG_KEY).get(url).status_code == 401
    assert client_from("2001:db8::2", WRONG_KEY).get(url).status_code == 401
    assert client_from("2001:db8::ffff", WRONG_KEY).get(url).status_code == 429
    assert client_from("2001:db8:0:1::1", WRONG_KEY).get(url).status_code == 401


# --- Redis unreachable: fail open ---------------------------------------------------------


@pytest.fixture
def silent_port():
    """A port that accepts connections and never answers: Redis hung, not just gone."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield server.getsockname()[1]


@pytest.mark.parametrize("failure", ["refused", "hangs"])
def test_without_redis_the_api_fails_open_and_warns_once(
    ledger_world, settings, monkeypatch, caplog, failure, request
):
    port = 1 if failure == "refused" else request.getfixturevalue("silent_port")
    dead = f"redis://127.0.0.1:{port}/0"
    # All of Redis is gone: the limiter's connection and the cache.
    settings.REDIS_URL = dead
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": dead}}
    set_rate(monkeypatch, "1/hour")
    settings.API_AUTH_FAILURE_LIMIT = "1/hour"
    url = f"/api/v1/vouchers/{ledger_world.voucher.code}"
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="portal.ratelimit"):
        codes = [ledger_world.api.get(url).status_code for _ in range(4)]
        wrong = [client_from("203.0.113.9", WRONG_KEY).get(url).status_code for _ in range(3)]
    elapsed = time.monotonic() - started
    assert codes == [200] * 4
    assert wrong == [401] * 3
    # After the first failure the limiter stops trying for a while: one timeout, one warning.
    assert elapsed < 2, elapsed
    warnings = [r for r in caplog.records if r.name == "portal.ratelimit"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING


# --- cursors ----------------------------------------------------------------------------


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


HOSTILE_CURSORS = {
    "non-numeric position": b64(b"p=abc"),
    "NaN position": b64(b"p=NaN"),
    "NaN position, reversed": b64(b"r=1&p=NaN"),
    "infinite position": b64(b"p=Infinity"),
    "fractional position": b64(b"p=1.5"),
    "empty position": b64(b"p="),
    "position beyond bigint": b64(b"p=" + b"9" * 40),
    "position with underscores": b64(b"p=1_000"),
    "NUL in position": b64(b"p=1\x00"),
    "only a NUL": b64(b"\x00"),
    "non-numeric offset": b64(b"o=x"),
    "negative offset": b64(b"o=-1"),
    "huge offset": b64(b"o=" + b"9" * 30),
    "offset beyond the cutoff": b64(b"o=1001"),
    "non-boolean reverse": b64(b"r=yes"),
    "not base64": "!!not-base64!!",
    "truncated base64": "cD0",
    "NUL in the parameter": "\x00",
    "not ASCII": "中文",
    "not ASCII once decoded": b64("p=١".encode()),
    "not a query string": b64(b"&&&==="),
}
LISTS = ["/api/v1/redemptions", "/api/v1/usage/records", "/api/v1/settlements"]


@pytest.mark.parametrize("path", LISTS)
def test_every_malformed_cursor_is_404_invalid_cursor(ledger_world, path):
    # docs/api.md: "An invalid cursor is a 404 (`not_found`)".
    answers = {}
    for name, cursor in HOSTILE_CURSORS.items():
        response = ledger_world.api.get(path, {"cursor": cursor})
        error = response.json()["error"]
        answers[name] = (response.status_code, error["code"])
        if response.status_code == 404:
            assert error["message"] == "无效游标", name  # DRF's "Invalid cursor", translated
    # A NUL anywhere in a request may be refused before any view sees it.
    assert answers.pop("NUL in the parameter") in {(404, "not_found"), (400, "invalid")}
    assert answers == dict.fromkeys(answers, (404, "not_found"))


@pytest.mark.parametrize("path", LISTS)
def test_a_well_formed_cursor_still_pages(ledger_world, path):
    for cursor in [b64(b"p=999999"), b64(b"r=1&p=1"), b64(b"o=3&p=5"), b64(b"")]:
        response = ledger_world.api.get(path, {"cursor": cursor})
        assert response.status_code == 200, (cursor, response.content)
        assert "results" in response.json()


def test_a_well_formed_cursor_pages_from_its_position(ledger_world):
    mine = ledger_world.redemption.pk
    after = ledger_world.api.get("/api/v1/redemptions", {"cursor": b64(f"p={mine + 1}".encode())})
    assert [r["id"] for r in after.json()["results"]] == [mine]
    before = ledger_world.api.get("/api/v1/redemptions", {"cursor": b64(f"p={mine}".encode())})
    assert before.json()["results"] == []
