"""The audit trail page (issue #12, item 8): every action code the source writes has a
label in both languages, objects are shown by name ("Application #43"), and the
filters (dates in the city's time zone, actor, action, object, search) and pagination
hold."""

from __future__ import annotations

import ast
import pathlib
import re
from datetime import UTC, datetime

import pytest
import time_machine
from django.utils import translation

from compute.settlements import STEPS
from portal.audit import audit_record
from portal.audit_labels import audit_action_known, audit_action_label
from portal.models import CityMembership
from tests.vouchers.conftest import make_company, make_program
from vouchers.models import Application, ApplicationState
from vouchers.outcomes import TRANSITIONS as OUTCOME_TRANSITIONS
from vouchers.workflow import TRANSITIONS

ROOT = pathlib.Path(__file__).resolve().parents[2]
CODE = re.compile(r"^[a-z_]+\.[a-z_*]+$")
APPS = ("portal", "vouchers", "compute")
# Codes written with a variable part, and where the parts come from.
EXPANSIONS = {
    "application.": list(TRANSITIONS),
    "settlement.": list(STEPS),
    "outcome.": list(OUTCOME_TRANSITIONS),
}


def _written_codes() -> set[str]:
    """Every action code the apps' source can write, read from it rather than from the
    registry: `action=` constants (and both sides of a conditional); steps named
    without their `application.` prefix in the workflow's services; f-strings expanded
    from the table they take their part from (or, for any other family, the family
    `x.*`); and where `action=` is a variable, every dotted constant of that module
    that is not a Django label (`compute.add_datacenter`)."""
    codes: set[str] = set()
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts or path.name == "audit_labels.py":
                continue
            tree = ast.parse(path.read_text())
            variable = False
            writes = "audit_record" in path.read_text()
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                for kw in node.keywords:
                    if kw.arg != "action":
                        continue
                    value = kw.value
                    if isinstance(value, ast.JoinedStr):
                        head = value.values[0]
                        prefix = head.value if isinstance(head, ast.Constant) else ""
                        if prefix in EXPANSIONS:
                            codes.update(prefix + part for part in EXPANSIONS[prefix])
                        else:
                            codes.add(prefix + "*")
                    elif isinstance(value, ast.Name):
                        variable = True
                    for const in ast.walk(value):
                        if isinstance(const, ast.Constant) and isinstance(const.value, str):
                            if CODE.match(const.value):
                                codes.add(const.value)
                            elif (
                                "services" in path.parts
                                and app == "vouchers"
                                and re.match(r"^[a-z_]+$", const.value)
                            ):
                                codes.add(f"application.{const.value}")
            if variable or (writes and app == "portal"):
                for const in ast.walk(tree):
                    if (
                        isinstance(const, ast.Constant)
                        and isinstance(const.value, str)
                        and CODE.match(const.value)
                        and const.value.split(".")[0] not in APPS
                    ):
                        codes.add(const.value)
    return codes


def test_the_source_scan_finds_the_codes_it_should():
    """The scan itself: codes of each kind it reads, so a broken scan cannot pass."""
    codes = _written_codes()
    for code in [
        "settlement.mark_paid",  # f-string over STEPS
        "application.approve",  # f-string over TRANSITIONS
        "application.start_screening",  # a step named without its prefix
        "data_center.operator_grant",  # action=variable, the code a tuple's constant
        "city.create",  # a conditional
        "redemption.accept",
        "voucher.issue",
        "membership.grant",
    ]:
        assert code in codes
    assert not {c for c in codes if c.split(".")[0] in APPS}
    assert len(codes) > 50


def test_every_action_code_written_has_a_label_in_both_languages():
    missing, untranslated = [], []
    for code in sorted(_written_codes()):
        if not audit_action_known(code):
            missing.append(code)
            continue
        with translation.override("en"):
            english = audit_action_label(code)
        with translation.override("zh-hans"):
            chinese = audit_action_label(code)
        if english == code or not re.search(r"[\u4e00-\u9fff]", chinese):
            untranslated.append(code)
    assert missing == [], (
        f"codes without a label (register them in the app's audit_actions): {missing}"
    )
    assert untranslated == []


def test_an_unknown_code_is_shown_as_written():
    assert audit_action_label("nobody.wrote_this") == "nobody.wrote_this"


def _english(client) -> None:
    client.post("/i18n/setlang/", {"language": "en", "next": "/"})


@pytest.fixture
def application(shanghai, startup_user):
    program = make_program(shanghai.city)
    company = make_company(startup_user)
    return Application.objects.create(
        city=shanghai.city,
        program=program,
        company=company,
        created_by=startup_user,
        state=ApplicationState.SUBMITTED,
    )


def test_actions_and_objects_read_as_words_in_both_languages(client, shanghai, application):
    audit_record(
        action="application.approve",
        city=shanghai.city,
        actor=shanghai.approver,
        target=application,
    )
    audit_record(action="settlement.mark_paid", city=shanghai.city, actor=shanghai.manager)
    client.force_login(shanghai.auditor)
    html = client.get("/shanghai/staff/audit/").content.decode()
    assert f"申请 #{application.pk}" in html
    assert "申请已批准" in html and "结算单已标记为已付款" in html
    assert f"vouchers.application {application.pk}" not in html
    _english(client)
    html = client.get("/shanghai/staff/audit/").content.decode()
    assert f"Application #{application.pk}" in html
    assert "Application approved" in html and "Statement marked paid" in html


def _at(moment: datetime, **kwargs) -> None:
    with time_machine.travel(moment, tick=False):
        audit_record(**kwargs)


def _shown(client, query: str) -> list[int]:
    response = client.get(f"/shanghai/staff/audit/?{query}")
    assert response.status_code == 200
    return [e.seq for e in response.context["page"]]


def test_the_date_range_is_the_citys_calendar_days(client, shanghai):
    # 23:30 on 1 March and 00:30 on 2 March in Shanghai: both 1 March in UTC.
    _at(datetime(2026, 3, 1, 15, 30, tzinfo=UTC), action="voucher.issue", city=shanghai.city)
    _at(datetime(2026, 3, 1, 16, 30, tzinfo=UTC), action="voucher.revoke", city=shanghai.city)
    client.force_login(shanghai.manager)
    assert _shown(client, "date_from=2026-03-02") == [2]
    assert _shown(client, "date_to=2026-03-01") == [1]
    assert _shown(client, "date_from=2026-03-01&date_to=2026-03-02") == [2, 1]
    assert _shown(client, "date_from=2026-03-03") == []
    # A range that ends before it starts is refused, not silently empty.
    response = client.get("/shanghai/staff/audit/?date_from=2026-03-02&date_to=2026-03-01")
    assert response.context["form"].errors
    assert _shown(client, "date_from=2026-03-02&date_to=2026-03-01") == [2, 1]


def test_actor_action_object_and_search_filters(client, shanghai, shenzhen, application):
    city = shanghai.city
    audit_record(
        action="application.approve", city=city, actor=shanghai.approver, target=application
    )  # 1
    audit_record(
        action="application.reject", city=city, actor=shanghai.manager, target=application
    )  # 2
    membership = CityMembership.objects.filter(city=city).first()
    audit_record(
        action="membership.grant", city=city, actor=shanghai.manager, target=membership
    )  # 3
    audit_record(action="export.applications", city=city, actor=shanghai.auditor)  # 4
    audit_record(action="export.audit", city=city, actor=shanghai.auditor)  # 5
    audit_record(action="application.approve", city=shenzhen.city, actor=shenzhen.approver)
    client.force_login(shanghai.manager)
    assert _shown(client, "") == [5, 4, 3, 2, 1]
    assert _shown(client, f"actor={shanghai.approver.email}") == [1]
    assert _shown(client, "action=application.approve") == [1]
    assert _shown(client, "action=export.*") == [5, 4]
    assert _shown(client, "target_type=vouchers.application") == [2, 1]
    assert _shown(client, f"target_type=vouchers.application&target_id={application.pk}") == [2, 1]
    assert _shown(client, f"target_type=portal.citymembership&target_id={membership.pk}") == [3]
    # Search by code, by actor, and by the label the page shows (Chinese by default).
    assert _shown(client, "q=reject") == [2]
    assert _shown(client, "q=批准") == [1]
    assert _shown(client, f"q={shanghai.auditor.email}") == [5, 4]
    assert _shown(client, "action=no.such") == [5, 4, 3, 2, 1]  # not a choice: unfiltered


def test_pages_keep_the_filters_and_the_query_count_stays_put(
    client, shanghai, django_assert_max_num_queries
):
    for _ in range(60):
        audit_record(action="voucher.issue", city=shanghai.city, actor=shanghai.manager)
    for _ in range(5):
        audit_record(action="voucher.revoke", city=shanghai.city, actor=shanghai.manager)
    client.force_login(shanghai.auditor)
    with django_assert_max_num_queries(10):
        response = client.get("/shanghai/staff/audit/?action=voucher.issue")
    assert len(response.context["page"]) == 50
    assert "action=voucher.issue&amp;page=2" in response.content.decode()
    page2 = client.get("/shanghai/staff/audit/?action=voucher.issue&page=2").context["page"]
    assert len(page2) == 10
    for _ in range(100):
        audit_record(action="voucher.issue", city=shanghai.city, actor=shanghai.manager)
    with django_assert_max_num_queries(10):
        client.get("/shanghai/staff/audit/?action=voucher.issue")


def test_the_trail_is_its_citys_auditors_and_managers_only(client, shanghai, shenzhen):
    client.force_login(shenzhen.auditor)
    assert client.get("/shanghai/staff/audit/").status_code == 404
    client.force_login(shanghai.reviewer)
    assert client.get("/shanghai/staff/audit/").status_code == 403
