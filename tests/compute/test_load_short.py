"""The load test of tests/bench/load_api.py, short: ten data-center clients for ten
seconds against gunicorn and real Celery workers on the test database. `make load` runs
the full one (50 clients, 60 s)."""

from __future__ import annotations

import pytest
from django.conf import settings

from tests.bench.load_api import NEW, POLL, REPEAT, REUSED, VOID, LoadConfig, run_load
from tests.integration import _database_url

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_ten_clients_for_ten_seconds_balance_to_the_cent():
    config = LoadConfig(
        seconds=10,
        clients=10,
        data_centers=3,
        vouchers=100,
        web_workers=2,
        web_threads=4,
        celery_workers=2,
        drain_timeout=60,
    )
    report = run_load(config, database_url=_database_url(), redis_url=settings.REDIS_URL)

    assert report.server_errors == 0, report.render()
    assert report.problems == [], report.render()
    assert report.ok, report.render()
    # The mix was really sent: every kind of record and every endpoint.
    for kind in (
        "fresh",
        "duplicate",
        "conflict",
        "invalid",
        "unknown_voucher",
        "not_authorized",
        "outside_validity",
        "repeat_duplicate",
        "repeat_conflict",
    ):
        assert report.sent_kinds[kind] > 0, kind
    for endpoint in (NEW, REPEAT, REUSED, POLL, VOID):
        assert report.stats.latencies[endpoint], endpoint
    assert report.stats.statuses[VOID, 200] > 0
    assert report.accepted > 0
