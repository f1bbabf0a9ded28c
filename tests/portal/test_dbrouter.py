"""Reads of reports from the replica (portal.dbrouter), tested with a second connection
alias on the test database itself: what is asserted is which connection a query went
through."""

from __future__ import annotations

import threading

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

from portal.dbrouter import REPLICA, ReplicaRouter, reading_alias, use_replica
from portal.models import City, User
from tests.factories import CityFactory

# Tests that query through the replica name it among their databases, as Django's test
# cases want of every alias they use.
WITH_REPLICA = pytest.mark.django_db(transaction=True, databases=["default", REPLICA])


@pytest.fixture(scope="module")
def replica_alias(django_db_setup):
    """A `replica` alias as DATABASE_REPLICA_URL makes one, on the test database. Module
    scope: it must exist before a test's database access is set up, which checks the
    aliases a test names."""
    default = connections["default"].settings_dict
    connections.settings[REPLICA] = {**default, "TEST": {"MIRROR": "default"}}
    yield REPLICA
    connections[REPLICA].close()
    del connections[REPLICA]
    del connections.settings[REPLICA]


@pytest.fixture
def replica(replica_alias, settings):
    """The replica's connection, with the router installed (Django re-reads
    DATABASE_ROUTERS when the setting changes)."""
    settings.DATABASE_ROUTERS = ["portal.dbrouter.ReplicaRouter"]
    yield connections[replica_alias]
    connections[replica_alias].close()


def test_without_a_replica_everything_reads_the_primary():
    assert REPLICA not in connections.settings
    with use_replica():
        assert reading_alias() == "default"
    assert ReplicaRouter().db_for_write(User) == "default"


def test_router_sends_reads_in_the_block_to_the_replica_and_writes_never(replica):
    router = ReplicaRouter()
    assert router.db_for_read(City) == "default"
    with use_replica():
        assert router.db_for_read(City) == REPLICA
        assert router.db_for_write(City) == "default"
        with use_replica(enabled=False):  # a draft, say, inside a report
            assert router.db_for_read(City) == "default"
        assert router.db_for_read(City) == REPLICA
    assert router.db_for_read(City) == "default"
    assert router.allow_migrate("default", "portal") is True
    assert router.allow_migrate(REPLICA, "portal") is False


@WITH_REPLICA
def test_queries_in_the_block_go_through_the_replica_connection(replica):
    CityFactory(slug="hangzhou", code="HZ")
    primary = connections["default"]
    with CaptureQueriesContext(replica) as on_replica, CaptureQueriesContext(primary) as on_primary:
        with use_replica():
            slugs = list(City.objects.values_list("slug", flat=True))
            city = City.objects.get(slug="hangzhou")
        outside = City.objects.count()
    assert slugs == ["hangzhou"]
    assert len(on_replica) == 2
    assert all("portal_city" in q["sql"] for q in on_replica.captured_queries)
    assert len(on_primary) == 1  # the count, outside the block
    assert outside == 1
    # An object read from the replica is saved to the primary, never to the replica.
    city.name_en = "Hangzhou City"
    with (
        CaptureQueriesContext(replica) as on_replica,
        CaptureQueriesContext(primary) as on_primary,
        use_replica(),
    ):
        city.save(update_fields=["name_en"])
    assert len(on_replica) == 0
    assert any(q["sql"].startswith("UPDATE") for q in on_primary.captured_queries)


def test_the_block_follows_its_thread_only(replica):
    seen = {}
    inside = threading.Event()
    done = threading.Event()

    def other_thread() -> None:
        inside.wait(5)
        seen["other"] = reading_alias()
        done.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    with use_replica():
        inside.set()
        done.wait(5)
        seen["mine"] = reading_alias()
    thread.join()
    assert seen == {"mine": REPLICA, "other": "default"}


def test_as_a_decorator_each_call_is_a_block_of_its_own(replica):
    @use_replica()
    def report(depth: int) -> list[str]:
        here = [reading_alias()]
        return here + (report(depth - 1) if depth else [])

    assert report(2) == [REPLICA] * 3
    assert reading_alias() == "default"
    results = []
    threads = [threading.Thread(target=lambda: results.append(report(1))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [[REPLICA, REPLICA]] * 4
