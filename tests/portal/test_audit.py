import itertools

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from portal.audit import GENESIS, audit_chain_verify, audit_record
from portal.models import AuditEvent
from tests.concurrency import outcome_codes, race


def _tamper(sql: str, params: list) -> None:
    """Simulate a superuser who bypasses the append-only trigger."""
    with connection.cursor() as cursor:
        # A superuser can switch off ordinary triggers for the session.
        cursor.execute("SET session_replication_role = replica")
        cursor.execute(sql, params)
        cursor.execute("SET session_replication_role = origin")


@pytest.fixture
def chain(shanghai):
    # The fixture's memberships were created directly; start a fresh chain of five events.
    return [
        audit_record(
            action=f"test.step{i}", city=shanghai.city, actor=shanghai.manager, data={"i": i}
        )
        for i in range(5)
    ]


def test_events_link_to_their_predecessor(chain):
    assert chain[0].prev_hash == GENESIS
    for before, after in itertools.pairwise(chain):
        assert after.prev_hash == before.hash
        assert after.seq == before.seq + 1
    assert audit_chain_verify() == []


def test_chains_are_per_city(shanghai, shenzhen):
    a = audit_record(action="x", city=shanghai.city)
    b = audit_record(action="x", city=shenzhen.city)
    assert a.seq == b.seq == 1
    assert a.prev_hash == b.prev_hash == GENESIS


def test_database_refuses_update_and_delete(chain):
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=chain[1].pk).update(action="forged")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=chain[1].pk).delete()
    assert AuditEvent.objects.get(pk=chain[1].pk).action == "test.step1"


def test_verify_detects_an_edited_event(chain):
    _tamper("UPDATE portal_auditevent SET data = %s WHERE id = %s", ['{"i": 99}', chain[2].pk])
    problems = audit_chain_verify()
    assert len(problems) == 1
    assert problems[0].event_id == chain[2].pk
    assert "altered" in problems[0].reason


def test_verify_detects_a_deleted_event(chain):
    _tamper("DELETE FROM portal_auditevent WHERE id = %s", [chain[2].pk])
    problems = audit_chain_verify()
    assert len(problems) == 1
    assert problems[0].event_id == chain[3].pk
    assert "deleted" in problems[0].reason


def test_verify_detects_a_rehashed_replacement(chain):
    """Rewriting an event and recomputing its own hash still breaks the next link."""
    from portal.audit import event_hash

    forged = AuditEvent.objects.get(pk=chain[2].pk)
    forged.data = {"i": 42}
    new_hash = event_hash(forged)
    _tamper(
        "UPDATE portal_auditevent SET data = %s, hash = %s WHERE id = %s",
        ['{"i": 42}', new_hash, chain[2].pk],
    )
    problems = audit_chain_verify()
    assert [p.event_id for p in problems] == [chain[3].pk]


def test_verify_audit_command_names_the_broken_link(chain, capsys):
    call_command("verify_audit")
    assert "intact" in capsys.readouterr().out
    _tamper("UPDATE portal_auditevent SET action = 'forged' WHERE id = %s", [chain[1].pk])
    with pytest.raises(CommandError):
        call_command("verify_audit")
    assert f"event id {chain[1].pk}" in capsys.readouterr().err


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_keep_one_unbroken_chain():
    from tests.factories import CityFactory

    city = CityFactory(slug="chain", code="CH")

    def writer(n):
        def write():
            for i in range(10):
                audit_record(action=f"t{n}.{i}", city=city)

        return write

    assert outcome_codes(race(*(writer(n) for n in range(4)))) == ["done"] * 4
    assert sorted(AuditEvent.objects.filter(city=city).values_list("seq", flat=True)) == list(
        range(1, 41)
    )
    assert audit_chain_verify() == []


def test_the_nightly_task_logs_each_broken_link(chain, caplog):
    from portal.tasks import audit_chain_verify as nightly

    assert nightly.apply().get() == 0
    _tamper("UPDATE portal_auditevent SET action = 'forged' WHERE id = %s", [chain[1].pk])
    with caplog.at_level("ERROR", logger="portal.tasks"):
        assert nightly.apply().get() == 1
    assert [r.getMessage() for r in caplog.records if r.name == "portal.tasks"] == [
        f"audit chain broken: {audit_chain_verify()[0].describe()}"
    ]
