"""The isolation matrix (issue #15, item 8): every route of the URL configuration, tried
by every principal of one tenant against the objects of another.

The routes come from `django.urls.get_resolver()`, walked recursively, so a new view is
in the matrix the day it is added. Each URL kwarg is filled, by its name, with the
objects of city B (Shenzhen), data center Y and company B; scope kwargs (the city slug,
the console's data-center slug) also take the principal's own city A (Shanghai) and data
center X, so "my console, your redemption" is tried as well as "your console". A kwarg
the matrix cannot fill fails the test: a new kind of parameter gets a filler, it is
never skipped silently.

Principals: every staff role of Shanghai, an operator of data center X, a member of
company A and anonymous; on /api/, X's API key and no key (and two of the signed-in
principals, as the API must not take a session either). Each tries GET and POST, the
POST with a plausible body aimed at B's objects, once for each value of a field that
switches the view (`step`, `form`). The rules:

- never a 5xx;
- no response carries one of B's private markers (company B's legal name and credit
  code, its application's title, document, review, objection and info request, voucher
  codes and amounts, contract references, usage record ids, statement totals, Y's key
  prefix), except a marker the request itself sent;
- no 200 at all for an address naming B's objects, except on the routes that answer
  anyone (public pages), listed with their reasons;
- no table of `portal`, `vouchers` or `compute` changes: checksummed (one SELECT per
  table) after each route and fill; a change is pinned on the principal that made it
  and rolled back. Only the columns that change on any request are left out, and the
  writes a principal may make to its own rows are listed, each with its reason.

Everything runs inside one test over one world (pytest-django's `db` is per test);
findings are collected and reported together, by kind. Positive controls (B's own
people do see the markers; every route has a fill its owner reaches) keep the negatives
honest.
"""

from __future__ import annotations

import time

from django.test import Client

from tests.isolation.matrix import (
    Matrix,
    _bearer,
    _body_of,
    _logged_in,
    _probe_owner,
    checksum_sql,
    report,
    table_names,
)
from tests.isolation.routes import Fill, fills, walk_routes
from tests.isolation.world import _build_world
from tests.vouchers.conftest import company, sh_program  # noqa: F401 - fixtures

# --- the test -----------------------------------------------------------------------------


def test_no_principal_of_one_tenant_reaches_another_tenants_objects_on_any_route(
    shanghai, shenzhen, startup_user, company, sh_program, settings, tmp_path, capsys
):
    settings.MEDIA_ROOT = tmp_path / "media"
    started, cpu = time.monotonic(), time.process_time()
    world = _build_world(shanghai, shenzhen, startup_user, company, sh_program)
    built = time.monotonic() - started

    clients: dict[str, Client] = {
        "reviewer_a": _logged_in(shanghai.reviewer),
        "reviewer2_a": _logged_in(shanghai.reviewer2),
        "approver_a": _logged_in(shanghai.approver),
        "manager_a": _logged_in(shanghai.manager),
        "auditor_a": _logged_in(shanghai.auditor),
        "operator_x": _logged_in(world.extra["operator_x"]),
        "member_a": _logged_in(startup_user),
        "anonymous": Client(),
        "api_key_x": _bearer(world.x_key),
    }
    web_principals = [p for p in clients if p != "api_key_x"]
    # The API reads only the Bearer key; two signed-in principals stand for "a session
    # does not open it either" (the other roles would repeat them exactly).
    api_principals = ["api_key_x", "anonymous", "operator_x", "member_a"]
    owners = {
        "api_key_y": _bearer(world.y_key),
        "operator_y": _logged_in(world.extra["operator_y"]),
        "manager_b": _logged_in(world.extra["manager_b"]),
        "owner_b": _logged_in(world.extra["owner_b"]),
    }

    # Positive controls: B's own people do see the markers the matrix looks for.
    app_b, statement = world.ids["application"][0], world.ids["settlement"][0]
    for who, path, label in [
        ("manager_b", f"/{world.b_slug}/staff/applications/{app_b}/", "application title"),
        ("manager_b", f"/{world.b_slug}/staff/applications/{app_b}/", "company B legal name"),
        ("owner_b", f"/my/vouchers/{world.voucher_codes[0]}/", "voucher amount (formatted)"),
        ("owner_b", f"/my/vouchers/{world.voucher_codes[0]}/", "contract ref"),
        (
            "operator_y",
            f"/dc/{world.y_slug}/settlements/{statement}/",
            "statement covered (formatted)",
        ),
        ("operator_y", f"/dc/{world.y_slug}/keys/", "Y's key prefix"),
        ("api_key_y", f"/api/v1/vouchers/{world.voucher_codes[0]}", "voucher balance (plain)"),
        ("api_key_y", "/api/v1/usage/records", "usage record id"),
    ]:
        response = owners[who].get(path)
        assert response.status_code == 200, (who, path, response.status_code)
        assert world.markers[label] in _body_of(response).decode(), (who, path, label)

    failures: list[str] = []
    routes, skipped = walk_routes(failures)
    sql = checksum_sql(table_names())
    matrix = Matrix(world, clients, sql)
    matrix.failures = failures
    unreached: list[str] = []
    fills_tried = 0
    for route in routes:
        route_fills = fills(route, world, failures) if route.kwargs else [Fill({}, route.template)]
        principals = api_principals if route.is_api else web_principals
        reached = False
        for fill in route_fills:
            fills_tried += 1
            matrix.run(route, fill, principals)
            if fill.all_foreign and fill.foreign:
                status = _probe_owner(matrix, route, fill, owners)
                reached = reached or (status is not None and status != 404)
        if any(f.foreign for f in route_fills) and not reached:
            unreached.append(f"{route.name} ({route.template})")

    changed = matrix.changed()
    if changed:
        failures.append(f"change: after the whole matrix, tables differ: {sorted(changed)}")
    for route in unreached:
        failures.append(f"no fill of {route} is reached by its owner: the fills name nothing real")

    out = matrix.outcome
    principals_seen = sorted({p for ps in out.principals_per_route.values() for p in ps})
    statuses = sorted(out.by_status.items(), key=lambda item: str(item[0]))
    summary = [
        "",
        f"isolation matrix: {len(routes)} routes, {fills_tried} fills, "
        f"{len(principals_seen)} principals ({', '.join(principals_seen)}), "
        f"{out.cells} route x fill x principal cells, {out.requests} requests, "
        f"{len(sql.split(' UNION ALL '))} tables checksummed; world {built:.1f}s, "
        f"total {time.monotonic() - started:.1f}s ({time.process_time() - cpu:.1f}s CPU)",
        "statuses: " + ", ".join(f"{k} x{v}" for k, v in statuses),
        "skipped: " + "; ".join(f"{rule} ({len(paths)})" for rule, paths in skipped.items()),
    ]
    with capsys.disabled():
        print("\n".join(summary))
    findings = list(dict.fromkeys(failures))  # a re-run (to pin a change) repeats findings
    assert not findings, report(findings)
