"""Requests as each principal, checked for 5xx, leaked markers and changed tables."""

from __future__ import annotations

import copy
import json
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlencode

from django.conf import settings as django_settings
from django.db import connection, transaction
from django.test import Client

from compute.ingest.apply import usage_batch_apply
from compute.settlements import (
    STEPS as SETTLEMENT_STEPS,
)
from tests.isolation.routes import Fill, Route, field_sources, values_of
from tests.isolation.rules import (
    ANSWERS_ANYONE,
    APPS,
    EXCLUDED_TABLES,
    FORM,
    NOT_A_CRASH,
    OWN_WRITES,
    SWITCH_FIELDS,
    VOLATILE_COLUMNS,
)
from tests.isolation.world import World

# --- principals and requests --------------------------------------------------------------


@dataclass
class Outcome:
    requests: int = 0
    by_status: Counter = field(default_factory=Counter)
    cells: int = 0
    principals_per_route: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))


def _body_of(response) -> bytes:
    # Never response.close(): it sends request_finished, whose close_old_connections
    # would close the test's connection (the test client reads streams safely).
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)
    return response.content


def _is_download(response) -> bool:
    disposition = response.get("Content-Disposition", "")
    content_type = response.get("Content-Type", "")
    text = content_type.startswith(("text/", "application/json"))
    return "attachment" in disposition or not text


def table_names() -> list[str]:
    prefixes = tuple(f"{app}_" for app in APPS)
    names = [
        t
        for t in connection.introspection.table_names(include_views=False)
        if t.startswith(prefixes) and t not in EXCLUDED_TABLES
    ]
    return sorted(names)


def checksum_sql(tables: list[str]) -> str:
    """One SELECT per table, sent in one round trip: md5 of its rows in order."""
    parts = []
    for table in tables:
        dropped = VOLATILE_COLUMNS.get(table, ())
        row = "t::text"
        if dropped:
            row = "(to_jsonb(t) - ARRAY[" + ",".join(f"'{c}'" for c in dropped) + "])::text"
        digest = f"md5(coalesce(string_agg({row}, '|' ORDER BY {row}), ''))"
        # The table names come from the database's own catalogue, not from input.
        parts.append(f"SELECT '{table}', {digest} FROM \"{table}\" t")  # noqa: S608
    return " UNION ALL ".join(parts)


def checksums(sql: str) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return dict(cursor.fetchall())


class Matrix:
    def __init__(self, world: World, clients: dict[str, Client], sql: str) -> None:
        self.world = world
        self.clients = clients
        self.sql = sql
        self.baseline = checksums(sql)
        self.failures: list[str] = []
        self.outcome = Outcome()

    def request(self, who: str, route: Route, fill: Fill, method: str, suffix: str = "", body=None):
        """One request, checked: never a 5xx, no marker of B it did not send itself, no 200
        for B's object where the route does not answer anyone."""
        client = self.clients[who]
        path = fill.path + suffix
        sent = unquote(path)
        if method == "GET":
            call = lambda: client.get(path)  # noqa: E731
        elif route.is_api:
            sent += json.dumps(body, ensure_ascii=False)
            call = lambda: client.post(path, body, content_type="application/json")  # noqa: E731
        else:
            sent += json.dumps(body, ensure_ascii=False, default=str)
            form = urlencode(body, doseq=True)
            call = lambda: client.post(path, form, content_type=FORM)  # noqa: E731
        where = f"{method} {path} as {who}"
        self.outcome.requests += 1
        try:
            response = call()
        except Exception as error:  # the test client re-raises what would be a 500
            self.outcome.by_status["exception"] += 1
            frames = traceback.extract_tb(error.__traceback__)[-3:]
            at = " < ".join(f"{f.filename.split('/')[-1]}:{f.lineno}" for f in reversed(frames))
            self.failures.append(f"5xx: {where}: {type(error).__name__}: {error} at {at}"[:600])
            return None
        status = response.status_code
        self.outcome.by_status[status] += 1
        content = _body_of(response)
        if status >= 500 and NOT_A_CRASH.get(route.name, (0,))[0] != status:
            self.failures.append(f"5xx: {where}: {status}")
            return response
        text = content.decode("utf-8", "replace") + " " + str(response.headers)
        leaked = [
            label
            for label, marker in self.world.markers.items()
            if marker in text and marker not in sent
        ]
        if leaked:
            self.failures.append(f"leak: {where}: {status} shows {leaked}")
        if status == 200 and fill.foreign and route.name not in ANSWERS_ANYONE:
            kind = "a download" if _is_download(response) else "a page"
            self.failures.append(f"leak: {where}: 200, {kind} for an address naming B's objects")
        response.parsed = content
        return response

    def variants(self, route: Route, fill: Fill) -> tuple[list[str], list[tuple[str, Any]]]:
        """GET suffixes and POST (suffix, body) pairs for one route and fill."""
        gets = [""]
        if not fill.foreign:  # a list page, or one's own scope: search it for B
            gets.append(self.world.query)
        base = self.world.api_body if route.is_api else self.world.web_body
        posts: list[tuple[str, Any]] = [("", base)]
        for name in SWITCH_FIELDS:
            sources = set() if route.is_api else field_sources(route.view, name)
            if not sources:
                continue
            words = values_of(route.view, name, field=True)
            if name == "step" and "settlement" in route.name:
                # The statement views also compare with allowed_steps(), i.e. these.
                words |= set(SETTLEMENT_STEPS)
            for word in sorted(words):
                if "GET" in sources:  # a query parameter: for GET and POST alike
                    gets.append(f"?{name}={word}")
                    posts.append((f"?{name}={word}", base))
                if "POST" in sources:
                    posts.append(("", {**base, name: word}))
        if fill.values and not fill.foreign:
            posts = []  # one's own scope with nothing of B in the address: GET only
        return gets, posts

    def cell(self, route: Route, fill: Fill, who: str, *, own_checks: bool) -> None:
        gets, posts = self.variants(route, fill)
        for suffix in gets:
            self.request(who, route, fill, "GET", suffix)
        for suffix, body in posts:
            response = self.request(who, route, fill, "POST", suffix, body)
            if own_checks and route.name == "api:batch_create" and who == "api_key_x":
                self.check_own_batch(route, who, response)
        self.outcome.cells += own_checks
        self.outcome.principals_per_route[route.name].add(who)

    def check_own_batch(self, route: Route, who: str, response) -> None:
        """X's batch naming B's voucher: applied at once, every record must be rejected."""
        if response is None or response.status_code >= 300:
            return
        batch = usage_batch_apply(batch_id=json.loads(response.parsed)["id"])
        if batch.accepted or batch.rejected != batch.received:
            self.failures.append(
                f"leak: POST {route.template} as {who}: batch #{batch.pk} accepted "
                f"{batch.accepted} record(s) naming B's voucher: {batch.results}"
            )

    def changed(self) -> set[str]:
        now = checksums(self.sql)
        return {t for t, digest in now.items() if self.baseline.get(t) != digest}

    def _sessions(self) -> dict[str, str | None]:
        return {
            who: getattr(c.cookies.get(django_settings.SESSION_COOKIE_NAME), "value", None)
            for who, c in self.clients.items()
        }

    def run(self, route: Route, fill: Fill, principals: list[str]) -> None:
        """All principals on one route and fill in one savepoint; if a table changed, or
        a request ended a principal's session, it is rolled back (cookies too) and each
        principal runs again alone, so the change is pinned on whoever made it."""
        cookies = {who: copy.deepcopy(c.cookies) for who, c in self.clients.items()}
        sessions = self._sessions()
        sid = transaction.savepoint()
        found = len(self.failures)
        for who in principals:
            self.cell(route, fill, who, own_checks=False)
        changed = self.changed()
        if not changed and self._sessions() == sessions:
            transaction.savepoint_commit(sid)
            self.outcome.cells += len(principals)
            return
        transaction.savepoint_rollback(sid)
        # What this pass found is found again below, each principal alone from the same
        # start; kept from here it would also count what one principal saw of another's
        # writes in this pass (A's auditor exporting the trail sees the filter A's
        # manager typed into an export just before, recorded by its audit event).
        del self.failures[found:]
        allowed_to, allowed, _why = OWN_WRITES.get(route.name, (frozenset(), frozenset(), ""))
        for who in principals:
            for name, jar in cookies.items():
                self.clients[name].cookies = copy.deepcopy(jar)
            sid = transaction.savepoint()
            self.cell(route, fill, who, own_checks=True)  # findings repeat: deduplicated
            mine = self.changed()
            transaction.savepoint_rollback(sid)
            if allowed_to & {who, "*"}:
                mine -= allowed
            if mine:
                self.failures.append(
                    f"change: {route.name} {fill.path} as {who} changed {sorted(mine)}"
                )
        for name, jar in cookies.items():
            self.clients[name].cookies = copy.deepcopy(jar)


def _probe_owner(matrix: Matrix, route: Route, fill: Fill, owners: dict[str, Client]) -> int | None:
    """B's (or Y's) own principal GETs the fill: proof the fill names a real object."""
    path = fill.path
    world = matrix.world
    if route.is_api:
        who = "api_key_y"
    elif path.startswith("/dc/"):
        who = "operator_y"
    elif path.startswith(f"/{world.b_slug}/staff/"):
        who = "manager_b"
    else:
        who = "owner_b"
    sid = transaction.savepoint()
    try:
        response = owners[who].get(path)
        _body_of(response)
        status = response.status_code
    except Exception as error:
        matrix.failures.append(f"5xx: GET {path} as {who} (owner): {type(error).__name__}: {error}")
        status = None
    transaction.savepoint_rollback(sid)
    return status


def _bearer(raw: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}")


def _logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def report(findings: list[str]) -> str:
    """The findings by kind (5xx, leak, change, the matrix's own), at most 40 of each."""
    kinds: dict[str, list[str]] = defaultdict(list)
    for finding in findings:
        head = finding.split(":", 1)[0]
        kinds[head if head in ("5xx", "leak", "change") else "matrix"].append(finding)
    lines = [f"{len(findings)} finding(s): " + ", ".join(f"{k} {len(v)}" for k, v in kinds.items())]
    for kind, found in kinds.items():
        lines += [f"-- {kind}", *found[:40]]
        if len(found) > 40:
            lines.append(f"   … and {len(found) - 40} more")
    return "\n".join(lines)
