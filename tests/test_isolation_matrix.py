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

import ast
import copy
import functools
import inspect
import itertools
import json
import random
import re
import textwrap
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urlencode
from zoneinfo import ZoneInfo

from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.exceptions import Resolver404
from django.urls.resolvers import RegexPattern, RoutePattern

from compute.ingest import BatchBody, usage_batch_receive
from compute.ingest.apply import usage_batch_apply
from compute.models import Redemption, RedemptionStatus, Registration, UsageRecord
from compute.services import api_key_issue
from compute.settlements import (
    STEPS as SETTLEMENT_STEPS,
)
from compute.settlements import (
    previous_month,
    settlement_build,
    settlement_issue,
)
from portal.models import CityMembership
from portal.services import membership_invite
from tests.compute.conftest import record
from tests.factories import DataCenterFactory, UserFactory
from tests.vouchers.conftest import (  # noqa: F401 - fixtures
    PDF,
    RUBRIC,
    company,
    complete_draft,
    into_review,
    program_values,
    review_by,
    sh_program,
)
from vouchers import services
from vouchers.credit_code import credit_code_generate
from vouchers.ledger import voucher_issue

# --- what the matrix leaves out, each with its reason -----------------------------------

# (how a route is recognised, what, why). Every rule must match at least one route, so the
# list cannot outlive the routes it names.
SKIPPED: list[tuple[str, str, str]] = [
    (
        "namespace",
        "admin",
        "Django's admin site: platform staff only (is_staff, checked by the admin itself); "
        "no city, data center or company scoping to test",
    ),
    (
        "include",
        "allauth.urls",
        "allauth's account pages (sign-in, sign-up, password, e-mail): the caller's own "
        "account only, no tenant data",
    ),
    (
        "name",
        "api:schema",
        "the OpenAPI document: generated from code, the same for everyone, no tenant data",
    ),
    ("name", "api:docs", "Swagger UI over api:schema: static, no tenant data"),
    (
        "name",
        "portal:set_language",
        "Django's i18n language switch: writes only the caller's own language preference",
    ),
]

# Columns that change on requests of any principal, whatever the tenant; left out of the
# checksums (the rest of each row is still compared).
VOLATILE_COLUMNS: dict[str, tuple[str, ...]] = {
    # Django's update_last_login (the user_logged_in signal) stamps every sign-in,
    # including the test client's force_login.
    "portal_user": ("last_login",),
    # api_key_authenticate records a key's use (at most once a minute): any API call.
    "compute_apikey": ("last_used_at",),
}
# Tables left out whole: none. Sessions (django_session), the cache and the rate limits
# (Redis) are outside the three apps' tables anyway.
EXCLUDED_TABLES: dict[str, str] = {}

APPS = ("portal", "vouchers", "compute")

# Routes where a principal legitimately writes rows of its own: url name -> (principals,
# tables they may change, why). These rows are rolled back after the check, so the world
# stays as it was; any other table changing is still a finding.
OWN_WRITES: dict[str, tuple[frozenset[str], frozenset[str], str]] = {
    "api:batch_create": (
        frozenset({"api_key_x"}),
        frozenset({"compute_usagebatch"}),
        "X's own usage batch is stored (202) even when its records name B's voucher; "
        "applying it must reject every record and charge nothing (checked)",
    ),
    # Lands with portal.signin (issue #15); harmless while the route does not exist.
    "portal:sessions": (
        frozenset({"*"}),
        frozenset({"portal_auditevent", "portal_signin"}),
        "the caller's own sessions page: 'sign out everywhere' ends the caller's own "
        "sign-ins and audits it",
    ),
}

# A 5xx that is a route's answer, not a crash: url name -> (status, why).
NOT_A_CRASH: dict[str, tuple[int, str]] = {
    "healthz": (503, "the health check's answer while no Celery worker or beat has a heartbeat"),
}

# Routes that answer 200 whatever B's object in the address, each with its reason; on any
# other route a 200 for an address naming B's objects is a finding even without a marker.
# The markers are checked on these too.
ANSWERS_ANYONE: dict[str, str] = {
    "portal:landing": "public: the list of cities",
    "portal:city_home": "public: a city's home page",
    "vouchers:programs": "public: a city's open programs",
    "vouchers:program": "public: an open program's terms",
    "vouchers:notice": "public: the public notice (company B has nothing in notice)",
    "vouchers:invitation": "GET shows the accept button for whatever token; the POST "
    "looks it up (and is a 404 for anyone but the invitee)",
    "portal:staff_join": "GET shows the accept button for whatever token (the city's name "
    "is in the address); the POST looks it up (and is a 404 for anyone but the invitee)",
}

# Posted or queried fields that choose what a view does (`step=issue`, `form=profile`):
# each value the view compares them with is tried.
SWITCH_FIELDS = ("step", "form")

# The literal path segment before a numeric kwarg names the kind of object it takes.
KIND_OF_SEGMENT = {
    "applications": "application",
    "documents": "document",
    "company": "company",
    "redemptions": "redemption",
    "batches": "batch",
    "keys": "api_key",
    "settlements": "settlement",
    "members": "membership",
}

FORM = "application/x-www-form-urlencoded"
SLUGLIKE = re.compile(r"[a-z][a-z0-9_]{1,40}")
# Where a view reads posted or queried fields (Django's and DRF's names).
INPUTS = {"POST": "POST", "data": "POST", "GET": "GET", "query_params": "GET"}


# --- the world ----------------------------------------------------------------------------


@dataclass
class Value:
    text: str
    foreign: bool | None  # True: B's or Y's; False: the principal's own scope; None: neutral


@dataclass
class World:
    a_slug: str
    b_slug: str
    x_slug: str
    y_slug: str
    program_slugs_b: list[str]
    ids: dict[str, list[int]]  # kind -> B's / Y's pks
    voucher_codes: list[str]
    tokens: list[str]
    record_ids: list[str]
    markers: dict[str, str]
    web_body: dict[str, Any]
    api_body: dict[str, Any]
    query: str  # a search aimed at B, for pages without object kwargs
    y_key: str
    x_key: str
    extra: dict[str, Any] = field(default_factory=dict)


def _money(amount: Decimal) -> list[str]:
    amount = Decimal(amount).quantize(Decimal("0.01"))
    return [f"{amount:,.2f}", f"{amount}"]


def _build_world(shanghai, shenzhen, startup_user, company_a, program_a) -> World:
    sz, sh = shenzhen, shanghai
    period = previous_month()
    tz = ZoneInfo("Asia/Shanghai")

    # City A: company A's own application, data center X with an operator and a key, and
    # a voucher of company A redeemed at X (so A's and X's own lists are not empty).
    complete_draft(program_a, company_a, startup_user)
    dc_x = DataCenterFactory(slug="matrix-x", name_zh="矩阵甲中心", name_en="Matrix X")
    dc_x.programs.add(program_a)
    Registration.objects.create(city=sh.city, data_center=dc_x, starts_on=date(2020, 1, 1))
    operator_x = UserFactory(email="ops@matrix-x.test")
    dc_x.operators.add(operator_x)
    _k, x_key = api_key_issue(data_center=dc_x, actor=None)
    voucher_a = voucher_issue(
        program=program_a,
        company=company_a,
        amount=Decimal("150000.00"),
        actor=sh.approver,
        valid_from=period,
    )
    Redemption.objects.create(
        voucher=voucher_a,
        data_center=dc_x,
        contract_ref="X-OWN-001",
        status=RedemptionStatus.ACTIVE,
        requested_by=startup_user,
    )

    # City B: a program with reviews and public notice.
    program_b = services.program_save(
        city=sz.city,
        actor=sz.manager,
        values=program_values(
            slug="zqx-matrix-2026",
            name_en="Shenzhen matrix vouchers",
            reviews_required=2,
            rubric=RUBRIC,
            notice_days=5,
        ),
    )
    owner_b = UserFactory(email="owner@zqx-private.test")
    company_b = services.company_create(
        actor=owner_b,
        legal_name="深圳隐秘算力矩阵科技有限公司",
        credit_code=credit_code_generate(random.Random(4471)),
        registered_city=sz.city,
        founded_on=date(2023, 5, 1),
        headcount=12,
        revenue_last_year=Decimal("1000000.00"),
    )
    # Company B's application: submitted, screened, one review in, an info request open.
    app_b = services.application_create(program=program_b, company=company_b, actor=owner_b)
    services.application_update(
        application=app_b,
        actor=owner_b,
        values={
            "title": "机密项目ZQX四四七一号",
            "summary": "不公开的训练计划。",
            "model_plans": "预训练",
            "requested_amount": Decimal("765432.10"),
            "declares_no_related_party": True,
            "declares_no_other_subsidy": True,
            "declares_true_information": True,
        },
        plan=[{"accelerator": "Ascend 910B", "domestic": True, "hours": Decimal("1000")}],
    )
    document_b = services.document_add(
        application=app_b,
        actor=owner_b,
        doc_type="business_licence",
        upload=SimpleUploadedFile("zqx-licence-4471.pdf", PDF, content_type="application/pdf"),
    )
    into_review(app_b, user=owner_b, manager=sz.manager)
    review_by(
        app_b,
        manager=sz.manager,
        reviewers=[sz.reviewer],
        scores={"team": 7, "plan": 8},
        comment="评审意见ZQX机密",
    )
    services.review_assign(application=app_b, actor=sz.manager, reviewer=sz.reviewer2)
    info = services.application_request_info(
        application=app_b, actor=sz.manager, question="补充材料问题ZQX机密"
    )
    invitation = services.company_invite(
        company=company_b, actor=owner_b, email="invitee@zqx-private.test"
    )
    staff_invitation = membership_invite(
        actor=sz.manager, city=sz.city, email="staff-invitee@zqx-private.test", role="auditor"
    )

    # Another company's application in public notice (its name is public by design), with
    # an objection (which is not).
    owner_n = UserFactory(email="owner@notice-co.test")
    company_n = services.company_create(
        actor=owner_n,
        legal_name="公示示例公司",
        credit_code=credit_code_generate(random.Random(4472)),
    )
    app_n = complete_draft(program_b, company_n, owner_n)
    into_review(app_n, user=owner_n, manager=sz.manager)
    review_by(
        app_n,
        manager=sz.manager,
        reviewers=[sz.reviewer, sz.reviewer2],
        scores={"team": 9, "plan": 9},
    )
    app_n.refresh_from_db()
    assert app_n.state == "in_notice", app_n.state
    objection = services.objection_raise(
        application=app_n, user=UserFactory(email="citizen@zqx.test"), text="异议内容ZQX机密"
    )

    # Company B's vouchers, data center Y, an active and a requested redemption, usage.
    voucher_b = voucher_issue(
        program=program_b,
        company=company_b,
        amount=Decimal("987654.32"),
        actor=sz.approver,
        valid_from=period,
    )
    voucher_b2 = voucher_issue(
        program=program_b,
        company=company_b,
        amount=Decimal("876543.21"),
        actor=sz.approver,
        valid_from=period,
    )
    dc_y = DataCenterFactory(slug="matrix-y", name_zh="矩阵乙中心", name_en="Matrix Y")
    dc_y.programs.add(program_b)
    Registration.objects.create(city=sz.city, data_center=dc_y, starts_on=date(2020, 1, 1))
    operator_y = UserFactory(email="ops@matrix-y.test")
    dc_y.operators.add(operator_y)
    key_y, y_key = api_key_issue(data_center=dc_y, actor=None)
    active = Redemption.objects.create(
        voucher=voucher_b,
        data_center=dc_y,
        contract_ref="HT-ZQX-ACTIVE-01",
        status=RedemptionStatus.ACTIVE,
        requested_by=owner_b,
    )
    requested = Redemption.objects.create(
        voucher=voucher_b2,
        data_center=dc_y,
        contract_ref="HT-ZQX-REQUEST-02",
        status=RedemptionStatus.REQUESTED,
        requested_by=owner_b,
    )
    start = datetime(period.year, period.month, 3, 9, 0, tzinfo=tz)
    records = [
        record(
            n,
            voucher_b.code,
            record_id=f"zqx-rec-{n:04d}",
            started_at=(start + timedelta(days=n)).isoformat(),
            ended_at=(start + timedelta(days=n, hours=10)).isoformat(),
            amount=amount,
        )
        for n, amount in ((1, "4321.09"), (2, "1234.57"))
    ]
    batch, _created = usage_batch_receive(data_center=dc_y, body=BatchBody.of_records(records))
    batch = usage_batch_apply(batch_id=batch.pk)
    assert batch.accepted == 2, batch.results
    # The statement of B × Y for last month, issued; and an empty draft a month earlier.
    statement = settlement_build(city=sz.city, data_center=dc_y, period=period)
    assert statement.records == 2
    statement = settlement_issue(settlement=statement, actor=sz.manager)
    earlier = (period - timedelta(days=1)).replace(day=1)
    draft = settlement_build(city=sz.city, data_center=dc_y, period=earlier)
    voucher_b.refresh_from_db()

    markers = {
        "company B legal name": company_b.legal_name,
        "company B credit code": company_b.credit_code,
        "company B member": owner_b.email,
        "application title": app_b.title,
        "document name": document_b.original_name,
        "review comment": "评审意见ZQX机密",
        "info request": info.question,
        "objection": objection.text,
        "invitation e-mail": invitation.email,
        "invitation token": invitation.token,
        "staff invitation e-mail": staff_invitation.email,
        "staff invitation token": staff_invitation.token,
        "voucher code": voucher_b.code,
        "voucher code 2": voucher_b2.code,
        "contract ref": active.contract_ref,
        "contract ref 2": requested.contract_ref,
        "usage record id": "zqx-rec-0001",
        "usage record id 2": "zqx-rec-0002",
        "Y's key prefix": key_y.prefix,
        "statement file": f"settlement-{sz.city.slug}-{dc_y.slug}-{period:%Y-%m}",
        "Shenzhen staff e-mail": "@shenzhen.test",
    }
    amounts = {
        "requested amount": Decimal("765432.10"),
        "voucher amount": Decimal("987654.32"),
        "voucher amount 2": Decimal("876543.21"),
        "voucher balance": voucher_b.balance,
        "statement amount": statement.amount_total,
        "statement covered": statement.covered_total,
    }
    for label, amount in amounts.items():
        for i, text in enumerate(_money(amount)):
            markers[f"{label} ({'formatted' if i == 0 else 'plain'})"] = text

    ids = {
        "application": [app_b.pk, app_n.pk],
        "document": [document_b.pk, *app_n.documents.values_list("pk", flat=True)],
        "company": [company_b.pk, company_n.pk],
        "redemption": [active.pk, requested.pk],
        "batch": [batch.pk],
        "api_key": [key_y.pk],
        "settlement": [statement.pk, draft.pk],
        "review": list(app_b.reviews.values_list("pk", flat=True)),
        "objection": [objection.pk],
        "info_request": [info.pk],
        "voucher": [voucher_b.pk, voucher_b2.pk],
        "usage_record": list(
            UsageRecord.objects.filter(data_center=dc_y).values_list("pk", flat=True)
        ),
        "program": [program_b.pk],
        "invitation": [invitation.pk],
        "membership": list(
            CityMembership.objects.filter(city=sz.city).values_list("pk", flat=True)
        ),
    }
    web_body = {
        # One body for every form: each view reads the fields it knows. Every id in it
        # names an object of city B, data center Y or company B.
        "reason": "矩阵越权尝试",
        "question": "越权提问",
        "answer": "越权回答",
        "comment": "越权评审",
        "note": "",
        "resolution": "越权处理",
        "recommend": "on",
        "conflict": "",
        "confirm": "yes",
        "amount": "200000",
        "team": "5",
        "plan": "5",
        "reviewer": sz.reviewer.pk,
        "applications": [app_b.pk, app_n.pk],
        "application": app_b.pk,
        "objection": objection.pk,
        "company": company_b.pk,
        "data_center": dc_y.pk,
        "contract_ref": "HT-HIJACK",
        "amount_cap": "100",
        "payment_ref": "PAY-HIJACK",
        "period": f"{period:%Y-%m}",
        "status": "suspended",
        "name": "hijacked key",
        "email": "hijacker@elsewhere.test",
        "text": "越权异议",
        "title": "越权标题",
        # Registering company B again under another name.
        "legal_name": "越权注册公司",
        "credit_code": company_b.credit_code,
    }
    api_body = {
        "reason": "hijack",
        "contract_ref": "HIJACK",
        "records": [
            record(
                9,
                voucher_b.code,
                record_id="zqx-rec-0001",
                started_at=start.isoformat(),
                ended_at=(start + timedelta(hours=1)).isoformat(),
            )
        ],
    }
    query = "?" + urlencode(
        {
            "q": company_b.legal_name,
            "voucher": voucher_b.code,
            "data_center": dc_y.slug,
            "status": "active",
            "period": f"{period:%Y-%m}",
        }
    )
    return World(
        a_slug=sh.city.slug,
        b_slug=sz.city.slug,
        x_slug=dc_x.slug,
        y_slug=dc_y.slug,
        program_slugs_b=[program_b.slug],
        ids=ids,
        voucher_codes=[voucher_b.code, voucher_b2.code],
        tokens=[invitation.token, staff_invitation.token],
        record_ids=["zqx-rec-0001", "zqx-rec-0002"],
        markers=markers,
        web_body=web_body,
        api_body=api_body,
        query=query,
        y_key=y_key,
        x_key=x_key,
        extra={
            "operator_x": operator_x,
            "operator_y": operator_y,
            "owner_b": owner_b,
            "manager_b": sz.manager,
        },
    )


# --- the routes ---------------------------------------------------------------------------


@dataclass
class Route:
    name: str  # namespaced ("compute:console"), or the pattern when unnamed
    template: str  # "/dc/{slug}/redemptions/{pk}/", kwargs in braces
    kwargs: list[str]
    callback: Callable
    view: Callable  # the function behind the decorators (or the APIView class)

    @property
    def is_api(self) -> bool:
        return self.template.startswith("/api/")


_ROUTE_KWARG = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")


def _regex_template(regex: str) -> str | None:
    """A path template from a `re_path` regex: named groups become {name}; escaped
    characters are unescaped. None when anything else regex-like is left."""
    text = regex.removeprefix("^").removesuffix("$").removesuffix(r"\Z")
    out, i = [], 0
    while i < len(text):
        if text.startswith("(?P<", i):
            name_end = text.index(">", i)
            name = text[i + 4 : name_end]
            depth, j, in_class = 1, name_end + 1, False
            while depth:
                char = text[j]
                if char == "\\":
                    j += 2
                    continue
                if in_class:
                    in_class = char != "]"
                elif char == "[":
                    in_class = True
                elif char == "(":
                    depth += 1
                elif char == ")":
                    depth -= 1
                j += 1
            out.append("{" + name + "}")
            i = j
        elif text[i] == "\\" and i + 1 < len(text) and not text[i + 1].isalnum():
            out.append(text[i + 1])
            i += 2
        elif text[i] in "()[]{}*+?|^$.\\":
            return None
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _template(pattern) -> str | None:
    if isinstance(pattern, RoutePattern):
        return _ROUTE_KWARG.sub(lambda m: "{" + m["name"] + "}", str(pattern))
    if isinstance(pattern, RegexPattern):
        return _regex_template(pattern.regex.pattern)
    return None


def _unwrapped(callback: Callable) -> Callable:
    view_class = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
    return view_class or inspect.unwrap(callback)


def _include_name(resolver: URLResolver) -> str:
    name = resolver.urlconf_name
    return name if isinstance(name, str) else getattr(name, "__name__", "")


def walk_routes(failures: list[str]) -> tuple[list[Route], dict[str, list[str]]]:
    """Every route of the URL configuration, and the ones skipped (by rule)."""
    routes: list[Route] = []
    skipped: dict[str, list[str]] = defaultdict(list)

    def rule_for(kind: str, key: str) -> str | None:
        for rule_kind, what, _why in SKIPPED:
            if rule_kind == kind and what == key:
                return f"{rule_kind} {what}"
        return None

    def walk(patterns: Iterable, prefix: str, namespaces: list[str]) -> None:
        for entry in patterns:
            piece = _template(entry.pattern)
            if isinstance(entry, URLResolver):
                shown = prefix + (piece if piece is not None else str(entry.pattern))
                rule = (entry.namespace and rule_for("namespace", entry.namespace)) or rule_for(
                    "include", _include_name(entry)
                )
                if rule:
                    skipped[rule].append(shown)
                    continue
                if piece is None:
                    failures.append(f"cannot turn the include {shown!r} into a path")
                    continue
                walk(
                    entry.url_patterns,
                    prefix + piece,
                    namespaces + ([entry.namespace] if entry.namespace else []),
                )
                continue
            assert isinstance(entry, URLPattern)
            name = ":".join([*namespaces, entry.name]) if entry.name else ""
            if piece is None:
                failures.append(f"cannot turn the route {prefix}{entry.pattern} into a path")
                continue
            template = prefix + piece
            rule = name and rule_for("name", name)
            if rule:
                skipped[rule].append(template)
                continue
            routes.append(
                Route(
                    name=name or template,
                    template=template,
                    kwargs=re.findall(r"\{(\w+)\}", template),
                    callback=entry.callback,
                    view=_unwrapped(entry.callback),
                )
            )

    walk(get_resolver().url_patterns, "/", [])
    for kind, what, _why in SKIPPED:
        if f"{kind} {what}" not in skipped:
            failures.append(f"skip rule {kind} {what!r} matches no route: remove it")
    return routes, skipped


# --- filling the kwargs -------------------------------------------------------------------


@functools.cache
def _tree(func: Callable) -> ast.AST | None:
    try:
        return ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError, SyntaxError):  # no source, or a file edited since import
        return None


def _strings(node: ast.AST, func: Callable, tree: ast.AST) -> set[str]:
    """The strings a comparison's other side stands for: a literal, a tuple/list/set of
    them, or a name bound to a dict (its keys) or a collection, locally or in the
    module."""
    if isinstance(node, ast.Constant):
        return {node.value} if isinstance(node.value, str) else set()
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return set().union(*(_strings(e, func, tree) for e in node.elts))
    if isinstance(node, ast.Dict):
        return set().union(*(_strings(k, func, tree) for k in node.keys if k is not None))
    if isinstance(node, ast.Name):
        found: set[str] = set()
        for assign in ast.walk(tree):
            if isinstance(assign, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == node.id for t in assign.targets
            ):
                found |= _strings(assign.value, func, tree)
        value = getattr(func, "__globals__", {}).get(node.id)
        if isinstance(value, dict | tuple | list | set | frozenset):
            found |= {v for v in value if isinstance(v, str)}
        return found
    return set()


def _field_source(node: ast.AST, name: str) -> str | None:
    """Where `request.POST.get("step")` or `request.POST["step"]` reads from ("POST"), or
    the query string's equivalents ("GET"); None for anything else."""

    def source(value: ast.AST) -> str | None:
        if isinstance(value, ast.Attribute) and value.attr in INPUTS:
            return INPUTS[value.attr]
        return None

    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        first = node.args[0] if node.args else None
        if node.func.attr == "get" and isinstance(first, ast.Constant) and first.value == name:
            return source(node.func.value)
    if (
        isinstance(node, ast.Subscript)
        and isinstance(node.slice, ast.Constant)
        and node.slice.value == name
    ):
        return source(node.value)
    return None


@functools.cache
def values_of(func: Callable, name: str, *, field: bool = False, depth: int = 0) -> set[str]:
    """The words a view tells apart in its variable `name` (a URL kwarg), or in the posted
    or queried field `name`: what the variable is compared with (`download == "csv"`,
    `action not in steps`), followed into the project functions it is passed to
    (`settlement_download(settlement, download)`)."""
    tree = _tree(func)
    if tree is None:
        return set()

    def is_var(node: ast.AST) -> bool:
        if isinstance(node, ast.Name) and node.id == name:
            return True
        # `step = request.GET.get("step")`: the local variable takes the field's name.
        return field and _field_source(node, name) is not None

    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(is_var(side) for side in sides):
                for side in sides:
                    if not is_var(side):
                        found |= _strings(side, func, tree)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and depth < 2:
            target = getattr(func, "__globals__", {}).get(node.func.id)
            if not (inspect.isfunction(target) and target.__module__.split(".")[0] in APPS):
                continue
            params = list(inspect.signature(target).parameters)
            passed = [(params[i], a) for i, a in enumerate(node.args) if i < len(params)]
            passed += [(k.arg, k.value) for k in node.keywords if k.arg]
            for param, arg in passed:
                if is_var(arg):
                    found |= values_of(target, param, depth=depth + 1)
    return {v for v in found if SLUGLIKE.fullmatch(v)}


@functools.cache
def field_sources(func: Callable, name: str) -> set[str]:
    """Where the view reads the field `name` from: "GET", "POST", both or neither."""
    tree = _tree(func)
    if tree is None:
        return set()
    return {_field_source(n, name) for n in ast.walk(tree)} - {None}


def candidates(route: Route, kwarg: str, world: World) -> list[Value] | None:
    """The values to try for one kwarg, by its name; None when the matrix has no filler."""
    segment = route.template.split("{" + kwarg + "}")[0].rstrip("/").split("/")[-1]
    if kwarg == "city_slug":
        return [Value(world.a_slug, False), Value(world.b_slug, True)]
    if kwarg == "slug":
        # After /dc/ a data center's (Y, or X as the operator's own scope), after
        # programs/ a program of city B; anywhere else, both.
        centers = [Value(world.y_slug, True), Value(world.x_slug, False)]
        programs = [Value(s, True) for s in world.program_slugs_b]
        return {"dc": centers, "programs": programs}.get(segment, programs + centers)
    if kwarg == "code":
        return [Value(c, True) for c in world.voucher_codes]
    if kwarg == "token":
        return [Value(t, True) for t in world.tokens]
    if kwarg == "record_id":
        return [Value(r, True) for r in world.record_ids]
    if kwarg in ("action", "download"):
        return [Value(v, None) for v in sorted(values_of(route.view, kwarg))] or None
    if kwarg == "pk" or kwarg.endswith("_id"):
        kind = KIND_OF_SEGMENT.get(segment)
        pks = world.ids[kind] if kind else sorted({pk for v in world.ids.values() for pk in v})
        return [Value(str(pk), True) for pk in pks]
    return None


@dataclass
class Fill:
    values: dict[str, Value]
    path: str

    @property
    def foreign(self) -> bool:
        return any(v.foreign for v in self.values.values())

    @property
    def all_foreign(self) -> bool:
        return all(v.foreign is not False for v in self.values.values())


def fills(route: Route, world: World, failures: list[str]) -> list[Fill]:
    options: dict[str, list[Value]] = {}
    for kwarg in route.kwargs:
        found = candidates(route, kwarg, world)
        if not found:
            failures.append(
                f"{route.name} ({route.template}): no filler for the URL kwarg {kwarg!r}; "
                "teach tests/test_isolation_matrix.py what it names"
            )
            return []
        options[kwarg] = found
    result = []
    for combo in itertools.product(*options.values()):
        values = dict(zip(options, combo, strict=True))
        path = route.template
        for kwarg, value in values.items():
            path = path.replace("{" + kwarg + "}", value.text)
        try:
            match = resolve(path)
        except Resolver404:
            continue  # the value does not fit the converter (checked below per kwarg)
        if match.func is not route.callback:
            continue  # shadowed by an earlier route: that route gets its own turn
        result.append(Fill(values, path))
    if route.kwargs and not result:
        failures.append(f"{route.name} ({route.template}): no fill resolves back to it")
    return result


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
        for who in principals:
            self.cell(route, fill, who, own_checks=False)
        changed = self.changed()
        if not changed and self._sessions() == sessions:
            transaction.savepoint_commit(sid)
            self.outcome.cells += len(principals)
            return
        transaction.savepoint_rollback(sid)
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
