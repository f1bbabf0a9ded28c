"""Statement downloads read an issued statement from the replica and a draft from the
primary (compute.statements, portal.dbrouter). The replica is a second connection alias
on the test database, so the files must come out the same either way."""

from __future__ import annotations

from datetime import date

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.utils import translation

from compute.settlements import settlement_build, settlement_issue
from compute.statements import statement_csv, statement_pdf
from tests.compute.conftest import record
from tests.portal.test_dbrouter import WITH_REPLICA, replica, replica_alias  # noqa: F401 - fixtures

pytestmark = pytest.mark.usefixtures("eager_tasks")


@WITH_REPLICA
def test_issued_statement_is_read_from_the_replica_and_a_draft_from_the_primary(
    ledger_world,
    shanghai,
    replica,  # noqa: F811 - the fixture
    django_capture_on_commit_callbacks,
):
    w = ledger_world
    with django_capture_on_commit_callbacks(execute=True):
        w.api.post(
            "/api/v1/usage/batches",
            {"records": [record(i, w.voucher.code) for i in range(3)]},
            format="json",
        )
    settlement = settlement_build(city=shanghai.city, data_center=w.dc, period=date(2026, 11, 1))
    primary = connections["default"]
    with (
        translation.override("en"),
        CaptureQueriesContext(replica) as on_replica,
        CaptureQueriesContext(primary),
    ):
        draft_csv = statement_csv(settlement)
    assert len(on_replica) == 0
    assert draft_csv.decode("utf-8-sig").count("dc-2026-11-") == 3

    settlement = settlement_issue(settlement=settlement, actor=shanghai.manager)
    with (
        translation.override("en"),
        CaptureQueriesContext(replica) as on_replica,
        CaptureQueriesContext(primary) as on_primary,
    ):
        issued_csv = statement_csv(settlement)
        statement_pdf(settlement)
    assert any("compute_settlementline" in q["sql"] for q in on_replica.captured_queries)
    assert not any("compute_settlementline" in q["sql"] for q in on_primary.captured_queries)
    assert issued_csv.decode("utf-8-sig").count("dc-2026-11-") == 3
    assert issued_csv.replace(b"Issued", b"Draft") == draft_csv
