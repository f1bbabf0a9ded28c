"""Schemathesis runs the API as a state machine: it follows the links of /api/schema/
(compute/api/schema_links.py) from one response to the next request — a batch sent and
then polled, a redemption listed and then accepted or rejected, a record listed and
then voided, a statement listed and then read — with generated values everywhere else,
as the data center the world gives a key to. No step may answer 5xx and every response
must keep to the schema."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, Phase, settings
from schemathesis import checks

from compute.models import UsageRecord
from compute.services import redemption_request
from compute.settlements import settlement_build, settlement_issue
from tests.compute.conftest import record
from vouchers.ledger import voucher_issue

pytestmark = pytest.mark.usefixtures("eager_tasks")

# Loaded at collection through the real WSGI application (no database needed).
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
# docs/api.md: a NUL character anywhere in a request is refused as a whole (400), even
# in a field the operation ignores, so a "valid" body never carries one (as in
# tests/compute/test_api_schema.py).
schema.config.generation.update(allow_x00=False)

# As in tests/compute/test_api_schema.py, and for the same reasons (docs/api.md): a
# batch with invalid records is accepted and rejects them per record (so "invalid" data
# gets a 202), and unknown query parameters are ignored. The key is sent by the test
# itself, so the generated-auth probe does not apply.
EXCLUDED_CHECKS = [checks.negative_data_rejection, checks.ignored_auth]


class APIWorkflow(schema.as_state_machine()):
    key = ""  # the data center's API key, set by the test
    capture = None  # pytest-django's django_capture_on_commit_callbacks, set by the test

    def setup(self) -> None:
        # Each scenario starts from the world the test built: what it changed (a
        # redemption accepted, a record voided) is rolled back at its end.
        self.savepoint = transaction.savepoint()

    def teardown(self) -> None:
        transaction.savepoint_rollback(self.savepoint)

    def call(self, case, **kwargs):
        # The batch's task runs when its transaction commits, which a test's never
        # does: run it (eagerly) after each request, so a batch is applied before the
        # next step polls it.
        with self.capture(execute=True):
            return super().call(case, **kwargs)

    def get_call_kwargs(self, case):
        return {"headers": {"Authorization": f"Bearer {self.key}"}}

    def validate_response(self, response, case, additional_checks=None, **kwargs) -> None:
        assert response.status_code < 500, response.text
        case.validate_response(
            response,
            additional_checks=additional_checks,
            excluded_checks=EXCLUDED_CHECKS,
            transport_kwargs=kwargs or None,
            recorder=self.recorder,
        )


@pytest.fixture
def keep_connection(db):
    # As Django's test client does: keep the test's connection (and its transaction)
    # open across requests instead of closing it at the end of each one.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def linked_world(ledger_world, world, startup_user, django_capture_on_commit_callbacks):
    """Something behind every link: applied usage records (to list and void), a
    redemption waiting for an answer (to accept or reject), an issued statement."""
    code = ledger_world.voucher.code
    with django_capture_on_commit_callbacks(execute=True):
        response = ledger_world.api.post(
            "/api/v1/usage/batches",
            {"records": [record(n, code) for n in range(1, 4)]},
            format="json",
        )
    assert response.status_code == 202, response.content
    assert UsageRecord.objects.filter(data_center=ledger_world.dc).count() == 3
    waiting = voucher_issue(
        program=ledger_world.program,
        company=ledger_world.company,
        amount=Decimal("300.00"),
        actor=world["shanghai"].approver,
        valid_from=date(2026, 11, 1),
    )
    redemption_request(
        voucher=waiting, data_center=ledger_world.dc, contract_ref="GA-2026-002", actor=startup_user
    )
    statement = settlement_build(
        city=world["shanghai"].city, data_center=ledger_world.dc, period=date(2026, 11, 1)
    )
    settlement_issue(settlement=statement, actor=world["shanghai"].manager)
    return ledger_world


def test_the_schema_links_each_created_or_listed_object_to_its_next_step(client, db):
    operations = {
        operation["operationId"]: operation
        for item in client.get("/api/schema/?format=json").json()["paths"].values()
        for operation in item.values()
    }

    def targets(operation_id: str, status: str) -> dict[str, dict]:
        links = operations[operation_id]["responses"][status]["links"]
        return {link["operationId"]: link["parameters"] for link in links.values()}

    assert targets("usage_batch_create", "202")["usage_batch_get"] == {"id": "$response.body#/id"}
    assert targets("redemption_list", "200")["redemption_accept"] == {
        "id": "$response.body#/results/0/id"
    }
    assert "redemption_reject" in targets("redemption_list", "200")
    assert targets("usage_record_list", "200")["usage_record_void"] == {
        "record_id": "$response.body#/results/0/record_id"
    }
    assert targets("settlement_list", "200")["settlement_get"] == {
        "id": "$response.body#/results/0/id"
    }


def test_api_workflows_never_fail_and_keep_to_the_schema(
    linked_world, keep_connection, django_capture_on_commit_callbacks
):
    APIWorkflow.key = linked_world.key
    APIWorkflow.capture = staticmethod(django_capture_on_commit_callbacks)
    APIWorkflow.run(
        settings=settings(
            max_examples=25,
            stateful_step_count=6,
            derandomize=True,  # the same scenarios on every run: CI must not flicker
            database=None,
            deadline=None,
            phases=[Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )
    )
