"""The API's contract outside the usage rules: auth, errors, idempotency, tenancy."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from compute.ingest import MAX_BODY_BYTES
from compute.models import ApiKey, Redemption, RedemptionStatus, UsageBatch
from compute.services import api_key_revoke
from tests.compute.conftest import api_client, record

BATCHES = "/api/v1/usage/batches"


def error_code(response) -> str:
    assert response["Content-Type"] == "application/json"
    return response.json()["error"]["code"]


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Basic dXNlcjpwYXNz", "Bearer sk_live_00000000_nope", "Token abc"],
)
def test_missing_malformed_or_unknown_key_is_401(ledger_world, header):
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get(f"/api/v1/vouchers/{ledger_world.voucher.code}")
    assert response.status_code == 401
    assert error_code(response) == "unauthenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_revoked_key_is_401_and_other_keys_keep_working(ledger_world, operator):
    from compute.services import api_key_issue

    _key, second = api_key_issue(data_center=ledger_world.dc, actor=operator)
    first = ApiKey.objects.filter(data_center=ledger_world.dc).order_by("created_at").first()
    api_key_revoke(key=first, actor=operator)
    url = f"/api/v1/vouchers/{ledger_world.voucher.code}"
    assert ledger_world.api.get(url).status_code == 401
    assert api_client(second).get(url).status_code == 200


def test_key_is_stored_hashed_with_a_visible_prefix_and_last_use(ledger_world):
    key = ApiKey.objects.get(data_center=ledger_world.dc)
    assert ledger_world.key.startswith(key.prefix)
    assert ledger_world.key not in (key.key_hash, key.prefix)
    assert key.last_used_at is None
    ledger_world.api.get(f"/api/v1/vouchers/{ledger_world.voucher.code}")
    key.refresh_from_db()
    assert key.last_used_at is not None


def test_ping_names_the_key_s_data_center_and_needs_a_key(ledger_world):
    w = ledger_world
    assert w.api.get("/api/v1/ping").json() == {"data_center": w.dc.slug}
    response = APIClient().get("/api/v1/ping")
    assert response.status_code == 401
    assert error_code(response) == "unauthenticated"


def test_voucher_lookup(ledger_world):
    w = ledger_world
    body = w.api.get(f"/api/v1/vouchers/{w.voucher.code}").json()
    assert body == {
        "code": w.voucher.code,
        "city": "shanghai",
        "program": "compute-2026",
        "company": w.company.legal_name,
        "status": "active",
        "currency": "CNY",
        "face_value": "1000.00",
        "balance": "1000.00",
        "valid_from": "2026-11-01",
        "valid_until": "2027-10-31",
        "rates": {"domestic": "0.30", "other": "0.20"},
    }


def test_voucher_of_a_city_the_data_center_does_not_serve_is_404(ledger_world):
    response = ledger_world.api.get(f"/api/v1/vouchers/{ledger_world.other_voucher.code}")
    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_unknown_api_path_and_wrong_method(ledger_world):
    assert error_code(ledger_world.api.get("/api/v1/nothing-here")) == "not_found"
    response = ledger_world.api.delete(BATCHES)
    assert response.status_code == 405
    assert error_code(response) == "method_not_allowed"


def _count():
    return UsageBatch.objects.count()


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"not json", "application/json", 400, "invalid"),
        (b"[1, 2]", "application/json", 400, "invalid"),
        (b'{"records": []}', "application/json", 400, "invalid"),
        (b'{"records": "x"}', "application/json", 400, "invalid"),
        (b'{"other": 1}', "application/json", 400, "invalid"),
        (b'{"records": [{}]}', "text/plain", 415, "unsupported_media_type"),
        (b'{"records": [{}]}', "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ],
)
def test_malformed_batches_store_nothing(ledger_world, body, content_type, status, code):
    before = _count()
    response = ledger_world.api.generic("POST", BATCHES, body, content_type=content_type)
    assert response.status_code == status
    assert error_code(response) == code
    assert _count() == before


def test_too_many_records_is_400_and_stores_nothing(ledger_world):
    records = [record(i, ledger_world.voucher.code) for i in range(5001)]
    response = ledger_world.api.post(BATCHES, {"records": records}, format="json")
    assert response.status_code == 400
    assert "records" in response.json()["error"]["fields"]
    assert _count() == 0


def test_body_over_10_mb_is_413_and_stores_nothing(ledger_world):
    body = b'{"records": [' + b" " * (MAX_BODY_BYTES - 14) + b"]}"
    assert len(body) == MAX_BODY_BYTES + 1
    response = ledger_world.api.generic("POST", BATCHES, body, content_type="application/json")
    assert response.status_code == 413
    assert error_code(response) == "too_large"
    assert _count() == 0


def test_body_of_exactly_10_mb_is_read(ledger_world):
    body = b'{"records": [' + b" " * (MAX_BODY_BYTES - 15) + b"]}"
    assert len(body) == MAX_BODY_BYTES
    response = ledger_world.api.generic("POST", BATCHES, body, content_type="application/json")
    assert response.status_code == 400  # parsed, then refused for the empty list


def test_idempotency_key(ledger_world, eager_tasks, django_capture_on_commit_callbacks):
    w = ledger_world
    payload = {"records": [record(1, w.voucher.code)]}
    with django_capture_on_commit_callbacks(execute=True):
        first = w.api.post(BATCHES, payload, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = w.api.post(BATCHES, payload, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    other = w.api.post(
        BATCHES, {"records": [record(2, w.voucher.code)]}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert other.status_code == 409
    assert error_code(other) == "conflict"
    # The same key from another data center is another key.
    assert (
        w.other_api.post(BATCHES, payload, format="json", HTTP_IDEMPOTENCY_KEY="k-1").status_code
        == 202
    )
    assert UsageBatch.objects.count() == 2


def test_another_data_centers_batch_is_404(ledger_world):
    w = ledger_world
    batch_id = w.api.post(BATCHES, {"records": [record(1, w.voucher.code)]}, format="json").json()[
        "id"
    ]
    response = w.other_api.get(f"{BATCHES}/{batch_id}")
    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_batch_is_queued_until_a_worker_applies_it(ledger_world):
    w = ledger_world
    response = w.api.post(BATCHES, {"records": [record(1, w.voucher.code)]}, format="json")
    assert response.json()["url"].endswith(f"{BATCHES}/{response.json()['id']}")
    body = w.api.get(f"{BATCHES}/{response.json()['id']}").json()
    assert body["status"] == "queued"
    assert body["results"] == []
    assert body["counts"] == {"accepted": 0, "duplicate": 0, "rejected": 0}


def test_redemption_list_filters_and_scopes(ledger_world):
    w = ledger_world
    body = w.api.get("/api/v1/redemptions").json()
    assert [r["id"] for r in body["results"]] == [w.redemption.pk]
    assert body["next"] is None
    item = body["results"][0]
    assert item["voucher"] == w.voucher.code
    assert item["covered_total"] == "0.00"
    assert item["amount_cap"] is None
    assert w.api.get("/api/v1/redemptions?status=requested").json()["results"] == []
    bad = w.api.get("/api/v1/redemptions?status=bogus")
    assert bad.status_code == 400
    assert "status" in bad.json()["error"]["fields"]


def test_redemption_accept_and_reject(ledger_world, startup_user):
    w = ledger_world
    w.redemption.status = RedemptionStatus.CLOSED
    w.redemption.save()
    requested = Redemption.objects.create(
        voucher=w.voucher, data_center=w.dc, contract_ref="GA-2", requested_by=startup_user
    )
    url = f"/api/v1/redemptions/{requested.pk}"
    assert w.other_api.post(f"{url}/accept", {}, format="json").status_code == 404
    response = w.api.post(f"{url}/accept", {"contract_ref": "GA-2026-077"}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "active"
    assert response.json()["contract_ref"] == "GA-2026-077"
    again = w.api.post(f"{url}/reject", {"reason": "late"}, format="json")
    assert again.status_code == 409
    assert error_code(again) == "conflict"


def test_reject_needs_a_reason(ledger_world, startup_user):
    w = ledger_world
    w.redemption.status = RedemptionStatus.CLOSED
    w.redemption.save()
    requested = Redemption.objects.create(
        voucher=w.voucher, data_center=w.dc, contract_ref="GA-3", requested_by=startup_user
    )
    response = w.api.post(f"/api/v1/redemptions/{requested.pk}/reject", {}, format="json")
    assert response.status_code == 400
    assert "reason" in response.json()["error"]["fields"]


def test_record_list_is_paginated_with_pinned_queries(
    ledger_world, eager_tasks, django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    w = ledger_world
    with django_capture_on_commit_callbacks(execute=True):
        w.api.post(
            BATCHES,
            {"records": [record(i, w.voucher.code, amount="1.00") for i in range(30)]},
            format="json",
        )
    with django_assert_max_num_queries(4):
        page = w.api.get("/api/v1/usage/records?limit=20").json()
    assert len(page["results"]) == 20
    assert page["results"][0]["covered_amount"] == "0.30"
    rest = w.api.get(page["next"]).json()
    assert len(rest["results"]) == 10
    assert rest["next"] is None
    assert w.other_api.get("/api/v1/usage/records").json()["results"] == []
    filtered = w.api.get(f"/api/v1/usage/records?voucher={w.voucher.code}&status=void").json()
    assert filtered["results"] == []


def test_throttling_per_data_center(ledger_world, monkeypatch):
    from compute.api.base import DataCenterThrottle

    monkeypatch.setattr(DataCenterThrottle, "THROTTLE_RATES", {"datacenter": "3/min"})
    url = f"/api/v1/vouchers/{ledger_world.voucher.code}"
    codes = [ledger_world.api.get(url).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    response = ledger_world.api.get(url)
    assert error_code(response) == "throttled"
    assert int(response["Retry-After"]) > 0
    # Another data center has its own allowance.
    other = f"/api/v1/vouchers/{ledger_world.other_voucher.code}"
    assert ledger_world.other_api.get(other).status_code == 200


def test_money_in_responses_is_exact_strings(ledger_world):
    body = ledger_world.api.get(f"/api/v1/vouchers/{ledger_world.voucher.code}").content
    parsed = json.loads(body, parse_float=Decimal)
    assert isinstance(parsed["balance"], str)
