"""A form fuzzer over the portal's web forms (issue #16): no field value makes a page 500.

For every page a role posts to (and every list filtered by its query string), the
catalogue below names the fields the page reads and, for each, values a person might
send (so the service behind it runs) and values nobody should: control characters,
very long or unusual text, numbers written "NaN", "1e999", "-0" or with 5,000 digits,
dates like "0000-00-00", JSON-ish text. Hypothesis picks a valid form and spoils none,
one or several of its fields; the test sends it as a user who may, and asserts that the
answer, the page it redirects to and the pages showing what was saved all answer below
500 (a stored value that breaks a later page is the worst kind of 500).

Each example runs in a savepoint that is rolled back, so every example starts from the
same world: a failing example replays exactly, and examples do not use each other up.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from django.db import connection, transaction
from django.test import Client
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from portal.models import User
from tests.compute.conftest import ledger_world, operator  # noqa: F401 - fixtures
from tests.portal.fuzz import (  # noqa: F401 - they register their forms
    compute_forms,
    outcome_forms,
    staff_forms,
)
from tests.portal.fuzz.catalogue import FORMS, Form
from tests.portal.fuzz.values import form_values
from tests.vouchers.conftest import (  # noqa: F401 - fixtures
    PDF,
    PNG,
    company,
    complete_draft,
    into_review,
    program_values,
    review_by,
    sh_program,
    sz_program,
)

# --- the fuzzer -----------------------------------------------------------------------------


class Browser:
    """One signed-in client per user, signed in once (outside the examples' savepoints)."""

    def __init__(self) -> None:
        self.clients: dict[int | None, Client] = {}

    def __call__(self, user: User | None) -> Client:
        key = user.pk if user is not None else None
        if key not in self.clients:
            client = Client()
            if user is not None:
                client.force_login(user)
            self.clients[key] = client
        return self.clients[key]


def answered(client: Client, method: str, url: str, data: dict | None) -> Any:
    response = getattr(client, method)(url, data if data is not None else {})
    assert response.status_code < 500, f"{method.upper()} {url} {data!r}: {response.status_code}"
    if not response.streaming:
        assert response.content or response.status_code in (301, 302, 303), url
    if response.status_code in (301, 302, 303):
        target = urlsplit(response["Location"])
        if not target.netloc:  # the page it sends the browser to answers too
            page = client.get(target.path + (f"?{target.query}" if target.query else ""))
            assert page.status_code < 500, (
                f"GET {response['Location']} after {method.upper()} {url}"
            )
    return response


@contextlib.contextmanager
def rolled_back() -> Iterator[None]:
    """One example in a savepoint rolled back at its end. The savepoint belongs to the
    test, like the test's own transaction: the lock-order guard of tests/conftest.py
    (portal.locks.LockOrderGuard) is told to look one block deeper, so each request's
    transaction is still judged on its own, as in production."""
    guards = [w for w in connection.execute_wrappers if hasattr(w, "base_depth")]
    for guard in guards:
        guard.base_depth += 1
    try:
        with transaction.atomic():
            yield
            transaction.set_rollback(True)
    finally:
        for guard in guards:
            guard.base_depth -= 1


@pytest.fixture
def browser(db) -> Browser:
    return Browser()


@pytest.fixture(params=sorted(FORMS))
def page(request) -> Form:
    return FORMS[request.param](request)


@settings(
    max_examples=12,
    derandomize=True,  # the same examples on every run: CI must not flicker
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_form_value_makes_a_page_fail(page, browser, data):
    values = data.draw(form_values(page.fields), label="fields")
    path = data.draw(
        st.fixed_dictionaries(
            {name: st.one_of(spec.valid, spec.nasty) for name, spec in page.path_fields.items()}
        ),
        label="path",
    )
    assume(not page.known(values))
    url = page.url.format(**{name: quote(str(value), safe="") for name, value in path.items()})
    for user in [page.user, *(step.user for step in page.then)]:
        browser(user)  # signed in before the savepoint, which would roll the session back
    with rolled_back():
        answered(browser(page.user), page.method, url, {**page.fixed, **values})
        for step in page.then:
            answered(
                browser(step.user), "get" if step.data is None else "post", step.url, step.data
            )
