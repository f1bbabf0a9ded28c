"""Shared fixtures. Every test world starts with two cities, a staff member of every
role in each, a startup user and an outsider (docs/architecture.md, Conventions)."""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass

import pytest

from portal.locks import LockOrderGuard
from portal.models import City, Role, User
from tests.factories import CityFactory, MembershipFactory, UserFactory


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _lock_order_checked(request):
    """Every statement of every test is checked against the lock order of
    portal/locks.py: no row is locked after the audit lock in one transaction."""
    if "django_db_setup" not in request.fixturenames and not any(
        name in request.fixturenames for name in ("db", "transactional_db")
    ):
        yield
        return
    from django.db import connection

    request.getfixturevalue("_django_db_helper")  # the test's own transaction first
    with connection.execute_wrapper(LockOrderGuard(base_depth=len(connection.atomic_blocks))):
        yield


@pytest.fixture(autouse=True)
def _signed_in_strongly(request, monkeypatch):
    """`client.force_login(user)` skips the sign-in form, so its session has neither
    passed a second factor nor (after a time_machine jump) authenticated recently.
    Tests of other things take it as fully signed in: the two-factor and
    re-authentication checks pass. Tests marked `auth_enforced` (tests/portal/
    test_twofactor.py, test_reauth.py, the browser's) get the real checks."""
    if request.node.get_closest_marker("auth_enforced"):
        yield
        return
    monkeypatch.setattr("portal.twofactor.mfa_satisfied", lambda request: True)
    monkeypatch.setattr("portal.reauth.recently_authenticated", lambda request: True)
    yield


@pytest.fixture(autouse=True)
def _isolated_cache(settings):
    """Each test gets its own key space in the real Redis cache, so rate limits and
    cached roles never leak between tests or runs (flushing would hit the broker)."""
    caches = copy.deepcopy(settings.CACHES)
    caches["default"]["KEY_PREFIX"] = f"test-{uuid.uuid4().hex[:12]}"
    settings.CACHES = caches


@pytest.fixture
def eager_celery():
    """Run Celery tasks in-process, their errors raised in the test (never swallowed);
    the settings are restored afterwards. The integration tests use a real worker."""
    from portal.celery import app

    saved = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = saved


@dataclass
class CityWorld:
    city: City
    reviewer: User
    reviewer2: User
    approver: User
    manager: User
    auditor: User

    def staff(self) -> list[User]:
        return [self.reviewer, self.reviewer2, self.approver, self.manager, self.auditor]


def _city_world(slug: str, code: str, name_zh: str, name_en: str) -> CityWorld:
    city = CityFactory(slug=slug, code=code, name_zh=name_zh, name_en=name_en)
    people = {}
    for key, role in [
        ("reviewer", Role.REVIEWER),
        ("reviewer2", Role.REVIEWER),
        ("approver", Role.APPROVER),
        ("manager", Role.PROGRAM_MANAGER),
        ("auditor", Role.AUDITOR),
    ]:
        user = UserFactory(email=f"{key}@{slug}.test")
        MembershipFactory(user=user, city=city, role=role)
        people[key] = user
    return CityWorld(city=city, **people)


@pytest.fixture
def shanghai(db) -> CityWorld:
    return _city_world("shanghai", "SH", "上海市", "Shanghai")


@pytest.fixture
def shenzhen(db) -> CityWorld:
    return _city_world("shenzhen", "SZ", "深圳市", "Shenzhen")


@pytest.fixture
def startup_user(db) -> User:
    return UserFactory(email="founder@startup.test")


@pytest.fixture
def outsider(db) -> User:
    return UserFactory(email="outsider@elsewhere.test")


@pytest.fixture
def world(shanghai, shenzhen, startup_user, outsider):
    return {
        "shanghai": shanghai,
        "shenzhen": shenzhen,
        "startup": startup_user,
        "outsider": outsider,
    }
