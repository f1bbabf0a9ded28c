"""How a batch's records are read (issue #18 split them out of test_usage_rules.py): numbers
with their exact digits, text PostgreSQL cannot hold, bodies compared byte for byte,
offsets, the columnar check agreeing with the one-by-one check, results and compression."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from compute.models import UsageBatch, UsageRecord
from tests.compute.conftest import record
from tests.compute.usage_push import BATCHES, push, push_raw, raw_record, results

pytestmark = pytest.mark.usefixtures("eager_tasks")


def test_numbers_are_read_with_their_exact_digits(ledger_world, django_capture_on_commit_callbacks):
    # A float would read 100.000000000000001 as 100.0 and accept it; the contract allows
    # at most two decimals, so the record is invalid. Numbers that fit are exact.
    w = ledger_world
    body = (
        '{"records": ['
        + raw_record(1, w.voucher.code, amount="100.000000000000001")
        + ", "
        + raw_record(2, w.voucher.code, amount="100.5", quantity="12.25")
        + "]}"
    )
    response = push_raw(w, body.encode(), django_capture_on_commit_callbacks)
    assert response.status_code == 202
    bad, good = results(w, response)["results"]
    assert (bad["status"], bad["error"]["code"]) == ("rejected", "invalid")
    assert "amount" in bad["error"]["message"]
    assert (good["status"], good["covered_amount"]) == ("accepted", "30.15")  # 100.50 x 0.30
    stored = UsageRecord.objects.get()
    assert (stored.amount, stored.quantity) == (Decimal("100.50"), Decimal("12.250"))


def test_strings_postgresql_cannot_hold_are_a_per_record_rejection(
    ledger_world, django_capture_on_commit_callbacks
):
    # An unpaired surrogate is valid JSON text but no valid string: the record carrying
    # it is rejected, the rest of the batch is applied, and its id is echoed readably.
    w = ledger_world
    body = (
        '{"records": ['
        + raw_record(1, w.voucher.code, resource='"Ascend \\ud800"')
        + ", "
        + raw_record(2, w.voucher.code, record_id='"tab\\there\\u0000"')
        + ", "
        + raw_record(3, w.voucher.code, resource='"H20 \\\\ PCIe"')
        + "]}"
    )
    response = push_raw(w, body.encode(), django_capture_on_commit_callbacks)
    assert response.status_code == 202
    surrogate, control, backslash = results(w, response)["results"]
    assert (surrogate["status"], surrogate["error"]["code"]) == ("rejected", "invalid")
    assert "resource" in surrogate["error"]["message"]
    assert control["record_id"] == "tab\there\ufffd"
    assert (control["status"], control["error"]["code"]) == ("rejected", "invalid")
    assert backslash["status"] == "accepted"
    assert UsageRecord.objects.get().resource == "H20 \\ PCIe"


def test_idempotency_compares_the_body_byte_for_byte(
    ledger_world, django_capture_on_commit_callbacks
):
    w = ledger_world
    body = '{"records": [' + raw_record(1, w.voucher.code) + "]}"
    key = {"HTTP_IDEMPOTENCY_KEY": "nightly-1"}
    with django_capture_on_commit_callbacks(execute=True):
        first = w.api.post(BATCHES, data=body.encode(), content_type="application/json", **key)
        again = w.api.post(BATCHES, data=body.encode(), content_type="application/json", **key)
        other = w.api.post(
            BATCHES, data=body.replace(": ", ":").encode(), content_type="application/json", **key
        )
    assert (first.status_code, again.status_code, other.status_code) == (202, 200, 409)
    assert first.json()["id"] == again.json()["id"]
    assert UsageBatch.objects.count() == 1


def test_an_offset_postgresql_cannot_hold_is_still_a_valid_timestamp(
    ledger_world, django_capture_on_commit_callbacks
):
    # RFC 3339 allows +20:00; PostgreSQL refuses offsets beyond ±15:59, so records are
    # staged in UTC (this once stopped the whole batch in the worker).
    w = ledger_world
    late = record(1, w.voucher.code, ended_at="2026-11-03T08:00:00+20:00")
    body = results(w, push(w, [late], django_capture_on_commit_callbacks))
    assert body["results"][0]["status"] == "accepted"
    stored = UsageRecord.objects.get()
    assert stored.ended_at.isoformat() == "2026-11-02T12:00:00+00:00"


VARIANTS = [
    {},
    {"started_at": "2026-11-02T00:00:00Z", "ended_at": "2026-11-02T12:00:00.5Z"},
    {"ended_at": "2026-11-02T12:00:00.123456-15:59"},
    {"ended_at": "2026-11-02T20:00:00+16:00"},  # beyond PostgreSQL: converted to UTC
    {"ended_at": "2026-11-02 20:00:00+08:00"},
    {"ended_at": "2026-11-02T08:00:00+08:00"},  # the same instant as started_at
    {"ended_at": "2026-11-02T07:59:59+08:00"},
    {"started_at": "2026-11-02T09:00:00+09:00", "ended_at": "2026-11-02T08:30:00+08:00"},
    {"started_at": "2026-11-02T08:00:00+09:00", "ended_at": "2026-11-02T08:00:00+08:00"},
    {"started_at": "2026-11-02T08:00:00.5+08:00", "ended_at": "2026-11-02T08:00:00.50+08:00"},
    {"started_at": "2026-11-02T08:00:00.5+08:00", "ended_at": "2026-11-02T08:00:00.6+08:00"},
    {"ended_at": "2026-02-30T20:00:00+08:00"},
    {"started_at": "0001-01-01T00:00:00+00:00"},
    {"ended_at": "9999-12-31T23:00:00+00:00"},
    {"quantity": "0.001"},
    {"quantity": "0.000"},
    {"quantity": "00"},
    {"quantity": 96},
    {"quantity": "1e3"},
    {"amount": "0"},
    {"amount": "0.10"},
    {"amount": "1234567890123"},
    {"record_id": "a\nb"},
    {"record_id": "x" * 64},
    {"record_id": "ü"},
    {"voucher": ""},
    {"voucher": "V" * 25},
    {"voucher": "SH 26"},
    {"resource": "华为 昇腾 910B"},
    {"resource": "   "},
    {"resource": "a\\b"},
    {"resource": "a\tb"},
    {"domestic": 1},
    {"extra": 1},
]


@pytest.mark.parametrize("overrides", VARIANTS)
def test_checking_all_records_at_once_agrees_with_one_by_one(overrides):
    """The common case is checked field by field over the whole batch; whatever it
    accepts, the record-by-record checks accept alike (and it leaves the rest to them)."""
    from compute.ingest.check import _stage_common, _stage_each

    records = [record(1, "SH-26-AAAA-AAAA"), {**record(2, "SH-26-BBBB-BBBB"), **overrides}]
    each = _stage_each(records)
    common = _stage_common(records)
    if common is not None:
        assert not each.settled  # nothing the one-by-one checks reject
        assert common == each
    else:
        assert overrides  # the plain record is the common case


def test_a_batch_of_common_records_with_a_repeated_record_id_is_checked_one_by_one():
    from compute.ingest.check import Repeat, _stage_common
    from compute.ingest.check import stage as _stage

    records = [record(1, "SH-26-AAAA-AAAA"), record(1, "SH-26-AAAA-AAAA")]
    assert _stage_common(records) is None
    assert _stage(records, timezone.now()).settled == {1: Repeat(first=0, same=True)}


def test_results_of_an_all_accepted_batch_read_as_those_of_any_other():
    """All accepted is written out by a shortcut; it must say what the general path says."""
    import json

    from compute.ingest.check import stage as _stage
    from compute.ingest.plan import Outcome, Plan
    from compute.ingest.results import results as _results

    shares = [Decimal("0.00"), Decimal("0.01"), Decimal("1234567.89")]
    records = [record(n, "SH-26-AAAA-AAAA") for n in range(1, 5)]
    staged = _stage(records, timezone.now())
    accepted = [Plan(Outcome.ACCEPTED, share, 1, 1) for share in shares]
    short, *counts = _results(_stage(records[:3], timezone.now()), accepted)
    general, *_ = _results(staged, [*accepted, Plan(Outcome.UNKNOWN_VOUCHER)])
    assert counts == [3, 0, 0]
    assert json.loads(short) == json.loads(general)[:3]
    assert short[1:-1] in general
    assert [r["covered_amount"] for r in json.loads(short)] == ["0.00", "0.01", "1234567.89"]


def test_batch_bodies_are_compressed_with_lz4_where_the_server_has_it(
    ledger_world, django_capture_on_commit_callbacks
):
    """Migration 0011: a stored body and its results are LZ4-compressed on a server built
    with LZ4, and stored uncompressed (not pglz, which cost more) on one without."""
    from django.db import connection

    w = ledger_world
    records = [record(n, w.voucher.code, amount="0.01") for n in range(400)]
    response = push(w, records, django_capture_on_commit_callbacks)
    assert results(w, response)["counts"]["accepted"] == 400
    with connection.cursor() as cursor:
        # Whether this server was built with LZ4, asked independently of the migration.
        cursor.execute(
            "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
        )
        (has_lz4,) = cursor.fetchone()
        cursor.execute(
            "SELECT pg_column_compression(body), pg_column_size(body), octet_length(body),"
            " pg_column_compression(results_json), pg_column_size(results_json),"
            " octet_length(results_json)"
            " FROM compute_usagebatch WHERE id = %s",
            [response.json()["id"]],
        )
        body_method, body_stored, body_length, results_method, results_stored, results_length = (
            cursor.fetchone()
        )
    assert body_length > 50_000 and results_length > 20_000  # well past the TOAST threshold
    if has_lz4:
        assert (body_method, results_method) == ("lz4", "lz4")
        assert body_stored < body_length / 4 and results_stored < results_length / 4
    else:
        assert (body_method, results_method) == (None, None)
        assert body_stored >= body_length and results_stored >= results_length
