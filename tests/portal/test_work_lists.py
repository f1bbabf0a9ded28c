"""The staff home is each role's work list (issue #12, item 1): for every list, the count
shown equals what the test made for that role in that city, the filtered list its link
opens holds as many, another city's user finds the page missing, and the number of
queries does not grow with the data."""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from compute.models import (
    Discrepancy,
    Redemption,
    RedemptionStatus,
    Registration,
    Settlement,
    SettlementStatus,
)
from tests.factories import DataCenterFactory
from tests.vouchers.conftest import make_company, make_program
from vouchers.ledger import voucher_issue
from vouchers.models import (
    Application,
    ApplicationState,
    InfoRequest,
    Objection,
    Review,
    StateChange,
)

S = ApplicationState
DAY = timedelta(days=1)


def english(client) -> None:
    client.post("/i18n/setlang/", {"language": "en", "next": "/"})


def counts(html: str) -> dict[str, int]:
    """Each work list's count on the page, by its registered name."""
    found = re.findall(
        r'id="work-([\w.]+)">\s*<header><strong>[^<]*</strong><span class="count[^"]*">(\d+)<',
        html,
    )
    return {name: int(n) for name, n in found}


class City:
    """Applications of one city in every waiting state, made straight in the database;
    the expected counts are written beside each."""

    def __init__(self, world, user, *, credit_code: str, notice_days: int = 5):
        self.world = world
        self.program = make_program(world.city, notice_days=notice_days)
        self.company = make_company(user, name=f"公司{world.city.slug}", code=credit_code)
        self.user = user

    def app(self, state: str, *, submitted_days_ago: int = 3, **fields) -> Application:
        return Application.objects.create(
            city=self.world.city,
            program=self.program,
            company=self.company,
            created_by=self.user,
            state=state,
            submitted_at=timezone.now() - submitted_days_ago * DAY,
            **fields,
        )

    def populate(self) -> None:
        w, now = self.world, timezone.now()
        # To screen: 3 submitted + 2 screening = 5 (a draft and an approved one do not).
        for _ in range(3):
            self.app(S.SUBMITTED)
        for _ in range(2):
            self.app(S.SCREENING)
        self.app(S.DRAFT)
        self.app(S.APPROVED)
        # Reviews: the reviewer has 2 waiting, one submitted and one declared a
        # conflict; reviewer2 has 1 waiting.
        for _ in range(2):
            a = self.app(S.IN_REVIEW)
            r = Review.objects.create(application=a, reviewer=w.reviewer)
            Review.objects.filter(pk=r.pk).update(assigned_at=now - 4 * DAY)
        done = self.app(S.IN_REVIEW)
        Review.objects.create(application=done, reviewer=w.reviewer, submitted_at=now)
        conflict = self.app(S.IN_REVIEW)
        Review.objects.create(application=conflict, reviewer=w.reviewer, conflict=True)
        Review.objects.create(application=self.app(S.TIE_BREAK), reviewer=w.reviewer2)
        # Information answered: 2 came back (one asked by the reviewer, one by the
        # manager); one came back and was moved on since; one is still with the company.
        for asker in (w.reviewer, w.manager):
            a = self.app(S.IN_REVIEW)
            InfoRequest.objects.create(application=a, asked_by=asker, question="?", answer="!")
            StateChange.objects.create(
                application=a, from_state=S.IN_REVIEW, to_state=S.INFO_REQUESTED, actor_label="x"
            )
            StateChange.objects.create(
                application=a, from_state=S.INFO_REQUESTED, to_state=S.IN_REVIEW, actor_label="y"
            )
        moved = self.app(S.SCREENING)  # also one more to screen: 6
        InfoRequest.objects.create(application=moved, asked_by=w.reviewer, question="?")
        StateChange.objects.create(
            application=moved, from_state=S.INFO_REQUESTED, to_state=S.SCREENING, actor_label="y"
        )
        StateChange.objects.create(
            application=moved, from_state=S.SCREENING, to_state=S.SCREENING, actor_label="z"
        )
        self.app(S.INFO_REQUESTED)
        # Notice: one ended with an objection open (objections 1, waiting 1), one ended
        # with its objection resolved (ready), one still running (waiting), plus one
        # recommended (ready) and one recommended the approver reviewed (not theirs).
        open_obj = self.app(S.IN_NOTICE, notice_ends_at=now - DAY)
        Objection.objects.create(application=open_obj, raised_by=self.user, text="no")
        resolved = self.app(S.IN_NOTICE, notice_ends_at=now - DAY)
        Objection.objects.create(
            application=resolved, raised_by=self.user, text="no", resolved_at=now
        )
        self.running = self.app(S.IN_NOTICE, notice_ends_at=now + 2 * DAY)
        self.app(S.RECOMMENDED)
        reviewed = self.app(S.RECOMMENDED)
        Review.objects.create(application=reviewed, reviewer=w.approver, submitted_at=now)


# The counts the rows above make, per role (a list the role does not act on is absent).
EXPECTED = {
    "reviewer": {
        "vouchers.screen": 6,
        "vouchers.my_reviews": 2,
        "vouchers.info_answered": 1,  # the one they asked
    },
    "reviewer2": {"vouchers.screen": 6, "vouchers.my_reviews": 1, "vouchers.info_answered": 0},
    "manager": {
        "vouchers.screen": 6,
        "vouchers.info_answered": 2,
        "vouchers.objections": 1,
    },
    "approver": {
        "vouchers.objections": 1,
        "vouchers.approve": 2,  # resolved notice + recommended, not the one reviewed
        "vouchers.notice_waiting": 2,
    },
    "auditor": {},
}
VOUCHER_LISTS = {name for lists in EXPECTED.values() for name in lists}


@pytest.fixture
def two_cities(world, startup_user):
    sh = City(world["shanghai"], startup_user, credit_code="91310000MA1FL8TQ2X")
    sh.populate()
    sz = City(world["shenzhen"], startup_user, credit_code="91440300MA5FL8TQ2Y")
    sz.populate()  # the same again in Shenzhen: none of it may count in Shanghai
    sz.app(S.SUBMITTED)
    return sh, sz


@pytest.mark.parametrize("role", list(EXPECTED))
def test_each_roles_counts_are_its_own_work_in_its_city(client, two_cities, role):
    sh, _ = two_cities
    client.force_login(getattr(sh.world, role))
    html = client.get(f"/{sh.world.city.slug}/staff/").content.decode()
    shown = {k: v for k, v in counts(html).items() if k in VOUCHER_LISTS}
    assert shown == EXPECTED[role]


@pytest.mark.parametrize(
    "role,name,query",
    [
        ("reviewer", "vouchers.screen", "todo=screen"),
        ("reviewer", "vouchers.my_reviews", "assigned=me"),
        ("reviewer2", "vouchers.my_reviews", "assigned=me"),
        ("reviewer", "vouchers.info_answered", "todo=info_answered"),
        ("manager", "vouchers.info_answered", "todo=info_answered"),
        ("manager", "vouchers.objections", "todo=objections"),
        ("approver", "vouchers.approve", "todo=approve"),
        ("approver", "vouchers.notice_waiting", "todo=notice_waiting"),
    ],
)
def test_each_list_links_to_the_queue_filtered_to_as_many(client, two_cities, role, name, query):
    sh, _ = two_cities
    client.force_login(getattr(sh.world, role))
    html = client.get(f"/{sh.world.city.slug}/staff/").content.decode()
    assert f"/{sh.world.city.slug}/staff/applications/?{query}" in html
    queue = client.get(f"/{sh.world.city.slug}/staff/applications/?{query}")
    assert queue.context["page"].paginator.count == EXPECTED[role][name]


def test_reviews_show_waiting_days_and_notices_their_end_in_the_city_zone(client, two_cities):
    sh, _ = two_cities
    client.force_login(sh.world.reviewer)
    english(client)
    html = client.get(f"/{sh.world.city.slug}/staff/").content.decode()
    assert "waiting 4 days" in html
    client.force_login(sh.world.approver)
    html = client.get(f"/{sh.world.city.slug}/staff/").content.decode()
    ends = timezone.localtime(sh.running.notice_ends_at, timezone.get_fixed_timezone(8 * 60))
    assert f"{ends:%Y-%m-%d %H:%M} (Asia/Shanghai)" in html


def test_another_citys_staff_find_the_home_missing(client, two_cities, world):
    client.force_login(world["shenzhen"].manager)
    assert client.get("/shanghai/staff/").status_code == 404
    client.force_login(world["outsider"])
    assert client.get("/shanghai/staff/").status_code == 404


def _compute_rows(world, startup_user, city, *, slug: str, code: str):
    """Redemptions, discrepancies, feeds and statements of one city: 2 redemptions
    requested, 1 active; 2 open discrepancies, 1 resolved; 1 unhealthy feed of 2; 1
    statement draft, 2 confirmed, 1 paid."""
    program = make_program(city, slug=f"compute-{slug}")
    company = make_company(startup_user, name=f"算力{slug}", code=code)
    sick, well = DataCenterFactory(slug=f"{slug}-a"), DataCenterFactory(slug=f"{slug}-b")
    sick.feed_healthy, sick.feed_error = False, "timeout"
    sick.save()
    for dc in (sick, well):
        Registration.objects.create(city=city, data_center=dc, starts_on=date(2026, 1, 1))
    actor = next(m.user for m in city.memberships.filter(role="approver"))
    for i, (dc, status) in enumerate([(sick, "requested"), (well, "requested"), (sick, "active")]):
        voucher = voucher_issue(
            program=program, company=company, amount=Decimal("100000.00"), actor=actor
        )
        Redemption.objects.create(
            voucher=voucher, data_center=dc, contract_ref=f"C{i}", status=status
        )
    for resolved in (None, None, timezone.now()):
        Discrepancy.objects.create(city=city, kind="ledger", detail="x", resolved_at=resolved)
    for month, status in [(1, "draft"), (2, "confirmed"), (3, "confirmed"), (4, "paid")]:
        Settlement.objects.create(
            city=city, data_center=well, period=date(2026, month, 1), status=status
        )


COMPUTE_EXPECTED = {
    "manager": {
        "compute.redemptions": 2,
        "compute.discrepancies": 2,
        "compute.feeds": 1,
        "compute.statements_issue": 1,
        "compute.statements_pay": 2,
    },
    "auditor": {"compute.redemptions": 2, "compute.discrepancies": 2, "compute.feeds": 1},
    "reviewer": {},
    "approver": {},
}


@pytest.fixture
def compute_cities(world, startup_user):
    _compute_rows(world, startup_user, world["shanghai"].city, slug="sh", code="91310000MA1FL8TQ2X")
    _compute_rows(world, startup_user, world["shenzhen"].city, slug="sz", code="91440300MA5FL8TQ2Y")
    return world


@pytest.mark.parametrize("role", list(COMPUTE_EXPECTED))
def test_compute_lists_count_the_citys_own_rows_per_role(client, compute_cities, role):
    client.force_login(getattr(compute_cities["shanghai"], role))
    html = client.get("/shanghai/staff/").content.decode()
    shown = {k: v for k, v in counts(html).items() if k.startswith("compute.")}
    assert shown == COMPUTE_EXPECTED[role]


def test_compute_lists_link_to_pages_filtered_to_as_many(client, compute_cities):
    client.force_login(compute_cities["shanghai"].manager)
    html = client.get("/shanghai/staff/").content.decode()
    for url, expected in [
        ("/shanghai/staff/redemptions/?status=requested", 2),
        ("/shanghai/staff/sync/?open=1", 2),
        ("/shanghai/staff/settlements/?status=draft", 1),
        ("/shanghai/staff/settlements/?status=confirmed", 2),
    ]:
        assert url in html
        response = client.get(url)
        assert response.status_code == 200
        assert response.context["page"].paginator.count == expected
    assert "/shanghai/staff/sync/?feed=unhealthy" in html
    rows = client.get("/shanghai/staff/sync/?feed=unhealthy").context["rows"]
    assert [reg.data_center.slug for reg, _ in rows] == ["sh-a"]
    assert Redemption.objects.filter(status=RedemptionStatus.REQUESTED).count() == 4
    assert Settlement.objects.filter(status=SettlementStatus.CONFIRMED).count() == 4


def test_another_citys_staff_find_the_redemptions_missing(client, compute_cities):
    client.force_login(compute_cities["shenzhen"].manager)
    assert client.get("/shanghai/staff/redemptions/").status_code == 404


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("role", ["manager", "approver", "reviewer", "auditor"])
def test_the_homes_queries_do_not_grow_with_the_data(
    client, world, startup_user, role, django_assert_max_num_queries
):
    sh = City(world["shanghai"], startup_user, credit_code="91310000MA1FL8TQ2X")
    sh.populate()
    _compute_rows(world, startup_user, sh.world.city, slug="sh", code="91440300MA5FL8TQ2Y")
    client.force_login(getattr(sh.world, role))
    before = _queries(client, "/shanghai/staff/")
    sh.populate()
    sh.populate()
    _compute_rows(world, startup_user, sh.world.city, slug="sh2", code="91310000MA1FL9TQ2X")
    with django_assert_max_num_queries(before):
        assert client.get("/shanghai/staff/").status_code == 200
    assert before <= 30


def test_an_empty_list_says_nothing_waits_in_both_languages(client, world):
    client.force_login(world["shanghai"].manager)
    html = client.get("/shanghai/staff/").content.decode()
    assert "暂无待办。" in html
    english(client)
    html = client.get("/shanghai/staff/").content.decode()
    assert "Nothing waiting." in html
